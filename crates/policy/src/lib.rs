//! Pure policy tables per zone: methods, authentication, content types, From/To/Request-URI rules, caller whitelists, limits; every verdict explains itself
