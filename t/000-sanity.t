# Sanity: the module loads into the nginx binary under test (the system
# /usr/sbin/nginx by default), nginx serves and stops cleanly with it, and
# the shortest useful path works: SDK heartbeat -> agent -> panel, panel
# action -> agent -> SDK -> ack -> panel.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

run_tests();

__DATA__

=== TEST 1: the module is built for this nginx and nginx -t loads it
--- nginx_V_like
nginx/1\.22\.1
--with-compat
--- config
        location / { return 204; }
--- nginx_t_ok
--- nginx_t_like
syntax is ok
--- nginx_t_unlike
not binary compatible|\[emerg\]|\[alert\]

=== TEST 2: the directives are known to nginx: a minimal agent config passes nginx -t
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target demo-target-a ws://127.0.0.1:%%PORT_1%%/;
--- config
        location = /ws/panel { amonitor_panel on; }
        location = /amonitor/status { amonitor_status; }
--- nginx_t_ok

=== TEST 3: nginx starts with the module loaded and serves a plain location
--- config
        location = /plain { return 200 "plain\n"; }
--- request
GET /plain
--- response_code: 200
--- response_body
plain
--- no_error_log
[error]
[warn]

=== TEST 4: a heartbeat of the SDK reaches a panel and an action is acked
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target demo-target-a ws://127.0.0.1:%%PORT_1%%/;
--- config
        location = /ws/panel { amonitor_panel on; }
--- fake_sdk
port=PORT_1 target_id=demo-target-a heartbeat_interval=0.2
--- ws_request: /ws/panel
--- ws_script
< "type":"heartbeat".*"target_id":"demo-target-a"
> {"msg_id":"sanity-1","type":"action","target_id":"demo-target-a","timestamp":1764120000000,"payload":{"action":"restart","params":{"from":"sanity"}}}
< "type":"action_ack".*"action_msg_id":"sanity-1"
--- sdk_actions_like
"msg_id":"sanity-1".*"action":"restart"
--- sdk_actions: 1
--- no_error_log
[error]

=== TEST 5: two workers each connect to the SDK and stop cleanly
--- workers: 2
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target demo-target-a ws://127.0.0.1:%%PORT_1%%/;
--- config
        location = /ws/panel { amonitor_panel on; }
--- fake_sdk
port=PORT_1 target_id=demo-target-a heartbeat_interval=0.5
--- ws_request: /ws/panel
--- ws_expect_like
"type":"heartbeat"
--- no_error_log
[error]
