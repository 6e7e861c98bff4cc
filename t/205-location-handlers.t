# amonitor_panel, amonitor_status, amonitor_metrics and amonitor_dashboard
# each answer the requests of their location: two of them in one location
# left all but the last without effect, and "nginx -t" said nothing (a
# "location /amonitor/ { amonitor_dashboard on; amonitor_status; }" served
# the status JSON at /amonitor/ and no dashboard). "nginx -t" now refuses
# it, naming both directives, at the second one's line. One of them with
# "off", or each in its own location, passes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

run_tests();

__DATA__

=== TEST 1: amonitor_status then amonitor_metrics
--- http_config
    amonitor_zone amonitor 1m;
--- config
    location /amonitor/ {
        amonitor_status;
        amonitor_metrics;
    }
--- nginx_t_emerg: "amonitor_metrics" and "amonitor_status" cannot be in the same location: each answers the location's requests; give each its own location
--- nginx_t_emerg_line: amonitor_metrics

=== TEST 2: amonitor_metrics then amonitor_status
--- http_config
    amonitor_zone amonitor 1m;
--- config
    location /amonitor/ {
        amonitor_metrics;
        amonitor_status;
    }
--- nginx_t_emerg: "amonitor_status" and "amonitor_metrics" cannot be in the same location: each answers the location's requests; give each its own location
--- nginx_t_emerg_line: amonitor_status

=== TEST 3: amonitor_panel then amonitor_status
--- http_config
    amonitor_zone amonitor 1m;
--- config
    location /amonitor/ {
        amonitor_panel on;
        amonitor_status;
    }
--- nginx_t_emerg: "amonitor_status" and "amonitor_panel" cannot be in the same location: each answers the location's requests; give each its own location
--- nginx_t_emerg_line: amonitor_status

=== TEST 4: amonitor_status then amonitor_panel
--- http_config
    amonitor_zone amonitor 1m;
--- config
    location /amonitor/ {
        amonitor_status;
        amonitor_panel on;
    }
--- nginx_t_emerg: "amonitor_panel" and "amonitor_status" cannot be in the same location: each answers the location's requests; give each its own location
--- nginx_t_emerg_line: amonitor_panel on

=== TEST 5: amonitor_dashboard then amonitor_metrics
--- http_config
    amonitor_zone amonitor 1m;
--- config
    location /amonitor/ {
        amonitor_dashboard on;
        amonitor_metrics;
    }
--- nginx_t_emerg: "amonitor_metrics" and "amonitor_dashboard" cannot be in the same location: each answers the location's requests; give each its own location
--- nginx_t_emerg_line: amonitor_metrics

=== TEST 6: amonitor_panel then amonitor_dashboard
--- http_config
    amonitor_zone amonitor 1m;
--- config
    location /amonitor/ {
        amonitor_panel on;
        amonitor_dashboard on;
    }
--- nginx_t_emerg: "amonitor_dashboard" and "amonitor_panel" cannot be in the same location: each answers the location's requests; give each its own location
--- nginx_t_emerg_line: amonitor_dashboard on

=== TEST 7: off does not count, nor a location of its own
--- http_config
    amonitor_zone amonitor 1m;
--- config
    location /amonitor/ {
        amonitor_panel off;
        amonitor_dashboard on;
    }
    location = /amonitor/x {
        amonitor_dashboard off;
        amonitor_status;
    }
    location = /ws/panel { amonitor_panel on; }
    location = /metrics { amonitor_metrics; }
--- nginx_t_ok

=== TEST 8: a nested location has its own handler
--- http_config
    amonitor_zone amonitor 1m;
--- config
    location /amonitor/ {
        amonitor_dashboard on;
        location = /amonitor/status { amonitor_status; }
    }
--- request
GET /amonitor/status
--- response_body_like: ^\{"version":
