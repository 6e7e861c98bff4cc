# amonitor_connect_timeout 0 passed nginx -t, and then every dial failed
# at once ("SDK handshake timed out after 0 ms"): every target stayed
# down for good. nginx -t now refuses it at the directive's line; the
# smallest time it takes, 1ms, passes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

run_tests();

__DATA__

=== TEST 1: 0
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_connect_timeout 0;
--- nginx_t_emerg: "amonitor_connect_timeout" must not be zero
--- nginx_t_emerg_line: amonitor_connect_timeout 0

=== TEST 2: 0ms
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_connect_timeout 0ms;
--- nginx_t_emerg: "amonitor_connect_timeout" must not be zero
--- nginx_t_emerg_line: amonitor_connect_timeout 0ms

=== TEST 3: 1ms passes
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_connect_timeout 1ms;
--- nginx_t_ok
