# The data-block runner of the harness tested on its own, without the
# module: each section kind once, against a plain nginx (a WebSocket
# proxy in front of the fake SDK where a block needs a WebSocket peer).
# The programmatic API is tested in t/002-harness.t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

run_tests(module => 0);

__DATA__

=== TEST 1: a plain location answers
--- config
        location /t { add_header X-Amon yes; return 200 "plain\n"; }
--- request
GET /t
--- response_code: 200
--- response_body
plain
--- response_headers_like
X-Amon: ^yes$
--- no_error_log
[error]

=== TEST 2: a panel through the proxy gets a heartbeat and its ack
--- workers: 2
--- fake_sdk
port=PORT_1 target_id=dd-a heartbeat_interval=0.2 actions=restart:1:done
--- config
        location /sdk/ {
            proxy_pass http://127.0.0.1:%%PORT_1%%/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
--- ws_request: /sdk/
--- ws_send
{"msg_id":"dd-1","type":"action","target_id":"dd-a","payload":{"action":"restart","target_url":"ws://127.0.0.1:%%PORT_1%%/"}}
--- ws_expect_like
"type":"heartbeat"
"action_msg_id":"dd-1".*"message":"done"
--- sdk_actions_like
"msg_id":"dd-1".*"target_url":"ws://127\.0\.0\.1:\d+/"
--- sdk_actions: 1
--- no_error_log
[error]

=== TEST 3: an interleaved script sends after what it received
--- fake_sdk
port=PORT_1 target_id=dd-b heartbeat_interval=0
--- config
        location /sdk/ {
            proxy_pass http://127.0.0.1:%%PORT_1%%/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
--- ws_request: /sdk/
--- ws_script
< "type":"heartbeat"
> {"msg_id":"s-1","type":"action","target_id":"dd-b","payload":{"action":"x"}}
< "action_msg_id":"s-1".*"unsupported action: x"
ping
> {"msg_id":"s-2","type":"action","target_id":"dd-b","payload":{"action":"restart"}}
< "action_msg_id":"s-2".*"success":true
close 1000
--- sdk_actions: 2

=== TEST 4: a token SDK closes the proxied panel with 4401
--- fake_sdk
port=PORT_1 target_id=dd-c token=abc
--- config
        location /sdk/ {
            proxy_pass http://127.0.0.1:%%PORT_1%%/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
--- ws_request: /sdk/
--- ws_expect_close: 4401

=== TEST 5: a refused handshake reports its status
--- config
        location /deny { return 403; }
--- ws_request: /deny
--- ws_handshake_status: 403

=== TEST 6: a missing file is logged
--- config
        location /f/ { root %%PREFIX%%; }
--- request
GET /f/missing.txt
--- response_code: 404
--- error_log
/f/missing.txt" failed
No such file or directory
--- no_error_log_like
\[(alert|crit)\]

=== TEST 7: nginx -t rejects an unknown directive with the exact text
--- config
        location / { amonitor_nothing_here on; }
--- nginx_t_fails
--- nginx_t_like
\[emerg\] unknown directive "amonitor_nothing_here" in \S+/nginx\.conf:\d+

=== TEST 8: nginx -t accepts a good config
--- config
        location / { return 204; }
--- nginx_t_ok
--- nginx_t_like
syntax is ok


=== TEST 9: nginx -t names the exact [emerg] text and the line of the directive
--- config
        location /r {
            return;
        }
--- nginx_t_emerg: invalid number of arguments in "return" directive
--- nginx_t_emerg_line: return
--- nginx_t_unlike
\[alert\]

=== TEST 10: the binary under test is nginx
--- nginx_V_like
^nginx version: nginx/
--- config
        location / { return 204; }
--- nginx_t_ok
