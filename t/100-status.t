# amonitor_status as an HTTP location: GET gives the JSON document, HEAD
# its headers only, other methods 405.  The document's fields and how the
# counters move with traffic are in t/101-status-counters.t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

run_tests();

__DATA__

=== TEST 1: POST to the status location is answered 405
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /status { amonitor_status; }
--- request
POST /status
x=1
--- response_code: 405

=== TEST 2: HEAD gets the headers only
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /status { amonitor_status; }
--- request
HEAD /status
--- response_code: 200
--- response_headers
Content-Type: application/json
--- response_body:

=== TEST 3: GET gives the JSON counters with no target configured
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /status { amonitor_status; }
--- request
GET /status
--- response_code: 200
--- response_body_like
^\{"version":"\d+\.\d+\.\d+","pid":\d+,"panels":0,"upstreams_open":0,"forwarded":0,"dropped":0,"actions":0,"duplicates":0,"acks":0,"errors":0,"ack_timeouts":0,"evictions":0,"invalid":0,"forbidden":0,"oversize":0,"targets":\[\]\}\n$
