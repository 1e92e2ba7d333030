"""One router per area: analyze (uploads), info (model card, health), live (WebSocket), recommendations (music)."""
