//! Sans-IO RTP/RTCP relay sessions (port pool, latching, source lock, statistics, timeouts) and their socket driver
