"""One router per resource; each serves its pages and its ``/api/v1`` routes."""
