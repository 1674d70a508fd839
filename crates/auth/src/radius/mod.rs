//! RADIUS client.
