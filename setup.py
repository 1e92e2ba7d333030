"""The wheel stores each network once (store_once.py): after setuptools copies the package into the build folder,
an ensemble whose members also ship as models of their own is rewritten there without them. The files in git and an
editable install (`pip install -e .`) keep the ensemble whole; both answer the same (tests/test_wheel.py)."""
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent))  # store_once.py sits beside this file


class BuildPyStoringEachNetworkOnce(build_py):
    def run(self):
        self.force = True  # copy every file afresh: a stored-once file left in build/ from an earlier build may name
        super().run()      # member files that have changed since
        if getattr(self, "editable_mode", False):
            return  # the package runs from src/, whose files stay as they are in git
        from store_once import store_wheel_weights

        for done in store_wheel_weights(Path(self.build_lib) / "ferkit" / "weights"):
            members = ", ".join(f"{e['name']} (member {e['member']})" for e in done["shipped_members"])
            print(f"ferkit: {done['name']}.onnx stored without {members}: "
                  f"{done['bytes_before'] / 1e6:.1f} -> {done['bytes_after'] / 1e6:.1f} MB")


setup(cmdclass={"build_py": BuildPyStoringEachNetworkOnce})
