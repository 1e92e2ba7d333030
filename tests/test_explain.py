"""The heat-map drawing helpers the CLI, the library overlay and the web page share."""
import cv2
import numpy as np

from ferkit.explain import cam_to_data_url, cam_to_png, colorize


def _cam() -> np.ndarray:
    cam = np.zeros((6, 6), np.float32)
    cam[:3, :3] = 1.0  # hot top-left quarter, cold elsewhere
    return cam


def test_colorize_is_red_where_the_map_is_high_and_blue_where_low():
    bgr = colorize(_cam(), (60, 40))  # size is (W, H)
    assert bgr.shape == (40, 60, 3) and bgr.dtype == np.uint8
    hot, cold = bgr[2, 2].astype(int), bgr[-2, -2].astype(int)
    assert hot[2] > hot[0] + 100 and cold[0] > cold[2] + 100


def test_cam_png_has_the_same_colours_and_fades_low_values_out():
    png = cv2.imdecode(np.frombuffer(cam_to_png(_cam(), size=48), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.shape == (48, 48, 4)
    assert np.array_equal(png[..., :3], colorize(_cam(), (48, 48)))
    assert png[2, 2, 3] == 200 and png[-2, -2, 3] == 0
    flat = cv2.imdecode(np.frombuffer(cam_to_png(_cam(), size=48, alpha=False), np.uint8), cv2.IMREAD_UNCHANGED)
    assert flat.shape == (48, 48, 3)
    assert cam_to_data_url(_cam()).startswith("data:image/png;base64,")
