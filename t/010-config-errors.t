# Configuration errors: every missing or contradictory configuration makes
# "nginx -t" fail with an [emerg] line that names the directive and the
# problem, at the file and line of the offending directive; a complete
# valid configuration passes.  %%PORT_1%% and %%PORT_2%% are ports nothing
# listens on: "nginx -t" only resolves targets, it never dials them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

run_tests();

__DATA__

=== TEST 1: duplicate target id
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target a ws://127.0.0.1:%%PORT_2%%/;
--- nginx_t_emerg: duplicate target id "a"
--- nginx_t_emerg_line: amonitor_target a ws://127.0.0.1:%%PORT_2%%

=== TEST 2: two targets with the same URL
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target b ws://127.0.0.1:%%PORT_1%%/;
--- nginx_t_emerg: targets "a" and "b" have the same URL "ws://127.0.0.1:%%PORT_1%%/"
--- nginx_t_emerg_line: amonitor_target b

=== TEST 3: two targets with the same URL after normalisation (no slash, upper-case host)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://localhost:%%PORT_1%%/;
    amonitor_target b ws://LOCALHOST:%%PORT_1%%;
--- nginx_t_emerg: targets "a" and "b" have the same URL "ws://LOCALHOST:%%PORT_1%%"
--- nginx_t_emerg_line: amonitor_target b

=== TEST 4: target URL with an http:// scheme
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a http://127.0.0.1:%%PORT_1%%/;
--- nginx_t_emerg: invalid target URL "http://127.0.0.1:%%PORT_1%%/": expected ws://host[:port][/path]
--- nginx_t_emerg_line: amonitor_target a

=== TEST 5: target URL without a host
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://:%%PORT_1%%/;
--- nginx_t_emerg: invalid target URL "ws://:%%PORT_1%%/": expected ws://host[:port][/path]
--- nginx_t_emerg_line: amonitor_target a

=== TEST 6: target URL with a port out of range
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://127.0.0.1:70000/;
--- nginx_t_emerg: invalid target URL "ws://127.0.0.1:70000/": expected ws://host[:port][/path]
--- nginx_t_emerg_line: amonitor_target a

=== TEST 7: wss:// target that nothing can verify
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a wss://127.0.0.1:%%PORT_1%%/;
--- nginx_t_emerg: "amonitor_ssl_verify" is on but no "amonitor_ssl_trusted_certificate" is set to verify wss:// URLs with
--- nginx_t_emerg_line: amonitor_target a

=== TEST 8: third parameter that is not token=
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://127.0.0.1:%%PORT_1%%/ secret=x;
--- nginx_t_emerg: invalid parameter "secret=x", expected "token=..."
--- nginx_t_emerg_line: amonitor_target a

=== TEST 9: empty token=
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://127.0.0.1:%%PORT_1%%/ token=;
--- nginx_t_emerg: invalid parameter "token=", expected "token=..."
--- nginx_t_emerg_line: amonitor_target a

=== TEST 10: token with a space in it
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://127.0.0.1:%%PORT_1%%/ "token=a b";
--- nginx_t_emerg: invalid token for target "a"
--- nginx_t_emerg_line: amonitor_target a

=== TEST 11: target id longer than 256 bytes
--- http_config eval
"amonitor_zone amonitor 1m;\namonitor_target " . ("i" x 257) . " ws://127.0.0.1:%%PORT_1%%/;\n"
--- nginx_t_emerg eval
"invalid target id \"" . ("i" x 257) . "\": not 1 to 256 bytes"
--- nginx_t_emerg_line: amonitor_target

=== TEST 11a: target id of 256 bytes (the longest allowed)
--- http_config eval
"amonitor_zone amonitor 1m;\namonitor_target " . ("\xc3\xa9" x 128) . " ws://127.0.0.1:%%PORT_1%%/;\n"
--- nginx_t_ok

=== TEST 11b: empty target id
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target "" ws://127.0.0.1:%%PORT_1%%/;
--- nginx_t_emerg: invalid target id "": not 1 to 256 bytes
--- nginx_t_emerg_line: amonitor_target "" ws://

=== TEST 11c: target id that is not UTF-8 (a 0xff byte)
--- http_config eval
"amonitor_zone amonitor 1m;\namonitor_target \"hi\xffbyte\" ws://127.0.0.1:%%PORT_1%%/;\n"
--- nginx_t_emerg: invalid target id: not UTF-8 at byte 3 (after "hi")
--- nginx_t_emerg_line: amonitor_target "hi

=== TEST 11d: target id that ends in the middle of a UTF-8 sequence
--- http_config eval
"amonitor_zone amonitor 1m;\namonitor_target caf\xc3\xa9\xe2\x82 ws://127.0.0.1:%%PORT_1%%/;\n"
--- nginx_t_emerg eval
"invalid target id: not UTF-8 at byte 6 (after \"caf\xc3\xa9\")"
--- nginx_t_emerg_line: amonitor_target caf

=== TEST 11e: target id with an overlong UTF-8 form (0xc0 0xaf, "/")
--- http_config eval
"amonitor_zone amonitor 1m;\namonitor_target a\xc0\xafb ws://127.0.0.1:%%PORT_1%%/;\n"
--- nginx_t_emerg: invalid target id: not UTF-8 at byte 2 (after "a")
--- nginx_t_emerg_line: amonitor_target a

=== TEST 11f: target id with a control character (nginx turns "\t" into a tab)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target "a\tb" ws://127.0.0.1:%%PORT_1%%/;
--- nginx_t_emerg: invalid target id: a control character at byte 2 (after "a")
--- nginx_t_emerg_line: amonitor_target "a

=== TEST 12: unresolvable target host
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://no-such-host.invalid:%%PORT_1%%/;
--- nginx_t_emerg: host not found in target URL "ws://no-such-host.invalid:%%PORT_1%%/"
--- nginx_t_emerg_line: amonitor_target a

=== TEST 13: amonitor_target without amonitor_zone
--- http_config
    amonitor_target a ws://127.0.0.1:%%PORT_1%%/;
--- nginx_t_emerg: "amonitor_target" requires "amonitor_zone"

=== TEST 14: amonitor_target with one argument
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a;
--- nginx_t_emerg: invalid number of arguments in "amonitor_target" directive
--- nginx_t_emerg_line: amonitor_target a

=== TEST 15: amonitor_target with four arguments
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_target a ws://127.0.0.1:%%PORT_1%%/ token=x extra;
--- nginx_t_emerg: invalid number of arguments in "amonitor_target" directive
--- nginx_t_emerg_line: amonitor_target a

=== TEST 16: amonitor_target inside a server block
--- http_config
    amonitor_zone amonitor 1m;
--- config
        amonitor_target a ws://127.0.0.1:%%PORT_1%%/;
--- nginx_t_emerg: "amonitor_target" directive is not allowed here
--- nginx_t_emerg_line: amonitor_target a

=== TEST 17: zone smaller than 32 pages
--- http_config
    amonitor_zone amonitor 64k;
--- nginx_t_emerg: zone "amonitor" is too small: 64k, the minimum is 128k
--- nginx_t_emerg_line: amonitor_zone

=== TEST 18: second amonitor_zone
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_zone other 1m;
--- nginx_t_emerg: "amonitor_zone" directive is duplicate
--- nginx_t_emerg_line: amonitor_zone other

=== TEST 19: zone name already used by another module
--- http_config
    limit_req_zone $binary_remote_addr zone=amonitor:1m rate=1r/s;
    amonitor_zone amonitor 1m;
--- nginx_t_emerg: the shared memory zone "amonitor" is already declared for a different use
--- nginx_t_emerg_line: amonitor_zone

=== TEST 20: invalid zone size
--- http_config
    amonitor_zone amonitor lots;
--- nginx_t_emerg: invalid zone size "lots"
--- nginx_t_emerg_line: amonitor_zone

=== TEST 21: amonitor_zone with one argument
--- http_config
    amonitor_zone amonitor;
--- nginx_t_emerg: invalid number of arguments in "amonitor_zone" directive
--- nginx_t_emerg_line: amonitor_zone

=== TEST 22: amonitor_panel without amonitor_zone names the file and line of the panel
--- config
        location /a { return 204; }
        location /ws/panel {
            amonitor_panel on;
        }
--- nginx_t_fails
--- nginx_t_like
(?m)^nginx: \[emerg\] "amonitor_panel" in \S+/nginx\.conf:\d+ requires "amonitor_zone" in the http block$
--- nginx_t_emerg_line: amonitor_panel on

=== TEST 23: amonitor_panel with a value other than on/off
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location /p { amonitor_panel maybe; }
--- nginx_t_emerg: invalid value "maybe" in "amonitor_panel" directive, it must be "on" or "off"
--- nginx_t_emerg_line: location /p

=== TEST 24: amonitor_panel in the http block
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_panel on;
--- nginx_t_emerg: "amonitor_panel" directive is not allowed here
--- nginx_t_emerg_line: amonitor_panel

=== TEST 25: amonitor_status with an argument
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location /s { amonitor_status on; }
--- nginx_t_emerg: invalid number of arguments in "amonitor_status" directive
--- nginx_t_emerg_line: location /s

=== TEST 26: amonitor_panel_token with an unknown option
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_panel_token a b;
--- nginx_t_emerg: invalid parameter "b", expected "read_only" or "targets=id,prefix*,...", each at most once
--- nginx_t_emerg_line: amonitor_panel_token

=== TEST 27: reconnect maximum less than the minimum
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_reconnect 2s 1s;
--- nginx_t_emerg: reconnect maximum "1s" is less than the minimum "2s"
--- nginx_t_emerg_line: amonitor_reconnect

=== TEST 28: invalid reconnect minimum
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_reconnect soon;
--- nginx_t_emerg: invalid reconnect delay "soon"
--- nginx_t_emerg_line: amonitor_reconnect

=== TEST 29: zero reconnect minimum
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_reconnect 0;
--- nginx_t_emerg: invalid reconnect delay "0"
--- nginx_t_emerg_line: amonitor_reconnect

=== TEST 30: invalid reconnect maximum
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_reconnect 100ms later;
--- nginx_t_emerg: invalid reconnect delay "later"
--- nginx_t_emerg_line: amonitor_reconnect

=== TEST 31: amonitor_reconnect with three arguments
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_reconnect 1s 2s 3s;
--- nginx_t_emerg: invalid number of arguments in "amonitor_reconnect" directive
--- nginx_t_emerg_line: amonitor_reconnect

=== TEST 32: amonitor_dedupe_ttl below 1s
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_dedupe_ttl 500ms;
--- nginx_t_emerg: "amonitor_dedupe_ttl" must be at least 1s and at most 366d

=== TEST 32b: amonitor_dedupe_ttl over 366d (Redis refuses such expiry)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_dedupe_ttl 367d;
--- nginx_t_emerg: "amonitor_dedupe_ttl" must be at least 1s and at most 366d

=== TEST 33: invalid amonitor_dedupe_ttl
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_dedupe_ttl forever;
--- nginx_t_emerg: "amonitor_dedupe_ttl" directive invalid value
--- nginx_t_emerg_line: amonitor_dedupe_ttl

=== TEST 34: zero amonitor_ack_timeout
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_ack_timeout 0;
--- nginx_t_emerg: "amonitor_ack_timeout" must not be zero

=== TEST 35: amonitor_max_message_size below 1k
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_max_message_size 1000;
--- nginx_t_emerg: "amonitor_max_message_size" must be between 1k and 64m

=== TEST 36: amonitor_max_message_size above 64m
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_max_message_size 65m;
--- nginx_t_emerg: "amonitor_max_message_size" must be between 1k and 64m

=== TEST 37: amonitor_send_queue 15 (out of 16..1048576)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_send_queue 15;
--- nginx_t_emerg: "amonitor_send_queue" must be between 16 and 1048576
--- nginx_t_emerg_line: amonitor_send_queue 15

=== TEST 38: amonitor_send_queue 1048577 (out of 16..1048576)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_send_queue 1048577;
--- nginx_t_emerg: "amonitor_send_queue" must be between 16 and 1048576
--- nginx_t_emerg_line: amonitor_send_queue 1048577

=== TEST 39: amonitor_ping with two arguments
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_ping 1s 2s;
--- nginx_t_emerg: invalid number of arguments in "amonitor_ping" directive
--- nginx_t_emerg_line: amonitor_ping

=== TEST 40: amonitor_allow_url http://127.0.0.1:*
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url http://127.0.0.1:*;
--- nginx_t_emerg: invalid URL pattern "http://127.0.0.1:*": expected ws://host:port or ws://host:*
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 41: amonitor_allow_url ws://127.0.0.1
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://127.0.0.1;
--- nginx_t_emerg: invalid URL pattern "ws://127.0.0.1": expected ws://host:port or ws://host:*
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 42: amonitor_allow_url ws://:8765
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://:8765;
--- nginx_t_emerg: invalid URL pattern "ws://:8765": expected ws://host:port or ws://host:*
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 43: amonitor_allow_url ws://127.0.0.1:0
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://127.0.0.1:0;
--- nginx_t_emerg: invalid URL pattern "ws://127.0.0.1:0": expected ws://host:port or ws://host:*
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 44: amonitor_allow_url ws://127.0.0.1:65536
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://127.0.0.1:65536;
--- nginx_t_emerg: invalid URL pattern "ws://127.0.0.1:65536": expected ws://host:port or ws://host:*
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 45: amonitor_allow_url ws://127.0.0.1:port
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://127.0.0.1:port;
--- nginx_t_emerg: invalid URL pattern "ws://127.0.0.1:port": expected ws://host:port or ws://host:*
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 46: amonitor_allow_url ws://[::1
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://[::1;
--- nginx_t_emerg: invalid URL pattern "ws://[::1": expected ws://host:port or ws://host:*
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 47: amonitor_allow_url ws://
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://;
--- nginx_t_emerg: invalid URL pattern "ws://": expected ws://host:port or ws://host:*
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 48: a value at the limit is accepted: amonitor_zone amonitor 128k;
--- http_config
    amonitor_zone amonitor 128k;
--- nginx_t_ok

=== TEST 49: a value at the limit is accepted: amonitor_dedupe_ttl 1s;
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_dedupe_ttl 1s;
--- nginx_t_ok

=== TEST 50: a value at the limit is accepted: amonitor_max_message_size 1k;
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_max_message_size 1k;
--- nginx_t_ok

=== TEST 51: a value at the limit is accepted: amonitor_max_message_size 64m;
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_max_message_size 64m;
--- nginx_t_ok

=== TEST 52: a value at the limit is accepted: amonitor_send_queue 16;
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_send_queue 16;
--- nginx_t_ok

=== TEST 53: a value at the limit is accepted: amonitor_send_queue 1048576;
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_send_queue 1048576;
--- nginx_t_ok

=== TEST 54: a value at the limit is accepted: amonitor_reconnect 1s;
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_reconnect 1s;
--- nginx_t_ok

=== TEST 55: a value at the limit is accepted: amonitor_reconnect 1s 1s;
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_reconnect 1s 1s;
--- nginx_t_ok

=== TEST 56: a value at the limit is accepted: amonitor_ping 0;
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_ping 0;
--- nginx_t_ok

=== TEST 57: a value at the limit is accepted: a target id of 256 bytes
--- http_config eval
"amonitor_zone amonitor 1m;\namonitor_target " . ("i" x 256) . " ws://127.0.0.1:%%PORT_1%%/;\n"
--- nginx_t_ok

=== TEST 58: a complete valid configuration passes nginx -t
--- http_config
    amonitor_zone        amonitor 16m;
    amonitor_target      demo-target-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target      demo-target-b ws://localhost:%%PORT_2%%/sdk token=s3cr3t;
    amonitor_dedupe_ttl  24h;
    amonitor_ack_timeout 10s;
    amonitor_connect_timeout 5s;
    amonitor_reconnect   200ms 10s;
    amonitor_ping        20s;
    amonitor_max_message_size 1m;
    amonitor_send_queue  1024;
    amonitor_allow_url   ws://127.0.0.1:*;
    amonitor_allow_url   ws://[::1]:8765/sdk;
    amonitor_panel_token http-level-token;
--- config
        amonitor_panel_token server-level-token;
        location = /ws/panel       { amonitor_panel on; amonitor_panel_token secret; }
        location = /ws/open        { amonitor_panel on; }
        location = /ws/off         { amonitor_panel off; }
        location = /amonitor/status { amonitor_status; }
        location = /healthz        { return 200 "ok\n"; }
--- nginx_t_ok
--- nginx_t_like
syntax is ok
test is successful
--- nginx_t_unlike
\[(?:emerg|alert|crit|warn)\]

=== TEST 59: amonitor_learned_expire below 2s
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_learned_expire 1s;
--- nginx_t_emerg: "amonitor_learned_expire" must be at least 2s

=== TEST 60: amonitor_connection_buffer_limit below the largest message
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_max_message_size 1m;
    amonitor_connection_buffer_limit 1m;
--- nginx_t_emerg: "amonitor_connection_buffer_limit" must be at least "amonitor_max_message_size" plus 64k

=== TEST 61: amonitor_dial_limit 0 (out of 1..amonitor_learned_limit)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_dial_limit 0;
--- nginx_t_emerg: "amonitor_dial_limit" must be between 1 and 1000000
--- nginx_t_emerg_line: amonitor_dial_limit 0

=== TEST 61a: amonitor_dial_limit above amonitor_learned_limit
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_learned_limit 10;
    amonitor_dial_limit 11;
--- nginx_t_emerg: "amonitor_dial_limit" must be between 1 and "amonitor_learned_limit" (10)

=== TEST 61b: amonitor_learned_limit 0 (out of 1..1000000)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_learned_limit 0;
--- nginx_t_emerg: "amonitor_learned_limit" must be between 1 and 1000000
--- nginx_t_emerg_line: amonitor_learned_limit 0

=== TEST 61c: amonitor_learned_limit 1000001 (out of 1..1000000)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_learned_limit 1000001;
--- nginx_t_emerg: "amonitor_learned_limit" must be between 1 and 1000000

=== TEST 62: amonitor_dial_limit_per_panel 65 (out of 1..64)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_dial_limit_per_panel 65;
--- nginx_t_emerg: "amonitor_dial_limit_per_panel" must be between 1 and 64
--- nginx_t_emerg_line: amonitor_dial_limit_per_panel 65

=== TEST 63: amonitor_dial_attempts 1001 (out of 1..1000)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_dial_attempts 1001;
--- nginx_t_emerg: "amonitor_dial_attempts" must be between 1 and 1000
--- nginx_t_emerg_line: amonitor_dial_attempts 1001

=== TEST 64: amonitor_allow_url with a "*" inside the path
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://127.0.0.1:9000/a*b;
--- nginx_t_emerg: invalid URL pattern "ws://127.0.0.1:9000/a*b": "*" may only end the path (a prefix), and "#" is not allowed

=== TEST 65: an empty amonitor_instance_id in a cluster
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:%%PORT_1%%;
    amonitor_cluster on;
    amonitor_instance_id "";
--- nginx_t_emerg: invalid "amonitor_instance_id" "": 1 to 64 letters, digits, ".", "_" or "-"

=== TEST 66: an amonitor_instance_id with a space (it goes into routes and tokens)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:%%PORT_1%%;
    amonitor_cluster on;
    amonitor_instance_id "eu west";
--- nginx_t_emerg: invalid "amonitor_instance_id" "eu west": 1 to 64 letters, digits, ".", "_" or "-"

=== TEST 67: an amonitor_instance_id with letters, digits, ".", "_" and "-" is fine
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:%%PORT_1%%;
    amonitor_cluster on;
    amonitor_instance_id eu-west_1.a;
--- nginx_t_ok

=== TEST 68: amonitor_dashboard in an exact location (its files could never be asked)
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /amonitor/ {
            amonitor_dashboard on;
        }
--- nginx_t_emerg: "amonitor_dashboard" cannot serve the dashboard's files from an exact location "= /amonitor/": use a prefix location such as "location /amonitor/"
--- nginx_t_emerg_line: amonitor_dashboard on

=== TEST 69: amonitor_dashboard off in an exact location is fine
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /amonitor/ { amonitor_dashboard off; }
--- nginx_t_ok

=== TEST 70: amonitor_ping below 100ms (a ping timer per connection this often)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_ping 1ms;
--- nginx_t_emerg: "amonitor_ping" must be 0 (off) or at least 100ms

=== TEST 71: amonitor_ping 100ms is fine
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_ping 100ms;
--- nginx_t_ok

=== TEST 72: a valid configuration with amonitor_zone alone starts and stops
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /ws/panel { amonitor_panel on; }

=== TEST 73: amonitor_cluster given twice, the first time "off"
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:%%PORT_1%%;
    amonitor_cluster off;
    amonitor_cluster on;
--- nginx_t_emerg: "amonitor_cluster" directive is duplicate
--- nginx_t_emerg_line: amonitor_cluster on

=== TEST 74: amonitor_allow_url with "*" as the host (hosts are compared as written)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://*:30105/;
--- nginx_t_emerg: invalid URL pattern "ws://*:30105/": the host must be written out (no "*" or user part); only the port may be "*"
--- nginx_t_emerg_line: amonitor_allow_url

=== TEST 75: amonitor_allow_url with a user part
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://u@127.0.0.1:*;
--- nginx_t_emerg: invalid URL pattern "ws://u@127.0.0.1:*": the host must be written out (no "*" or user part); only the port may be "*"

=== TEST 76: amonitor_panel_allow_origin with a path (a browser's Origin has none)
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /ws/panel { amonitor_panel on;
            amonitor_panel_allow_origin https://a.example.com/path; }
--- nginx_t_emerg: invalid origin "https://a.example.com/path": an origin has no path, query or fragment (browsers send scheme://host[:port])
--- nginx_t_emerg_line: amonitor_panel_allow_origin

=== TEST 77: amonitor_panel_allow_origin with a wildcard inside the host
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /ws/panel { amonitor_panel on;
            amonitor_panel_allow_origin https://a.*.com; }
--- nginx_t_emerg: invalid origin "https://a.*.com": "*" may only begin the host, as "*." (any subdomain)

=== TEST 78: amonitor_panel_allow_origin with a port that is not a number
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /ws/panel { amonitor_panel on;
            amonitor_panel_allow_origin https://a.example.com:x; }
--- nginx_t_emerg: invalid origin "https://a.example.com:x": the port is not a number from 1 to 65535

=== TEST 79: amonitor_panel_allow_origin without a scheme
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /ws/panel { amonitor_panel on;
            amonitor_panel_allow_origin a.example.com; }
--- nginx_t_emerg: invalid origin "a.example.com": expected scheme://host[:port], scheme://*.domain[:port] or "*"

=== TEST 80: amonitor_panel_allow_origin: exact, wildcard, IPv6, ports and "*" pass
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /ws/panel { amonitor_panel on;
            amonitor_panel_allow_origin https://a.example.com
                http://127.0.0.1:8080 https://*.example.org:8443
                http://[::1]:3000 http://[::1] chrome-extension://abc *; }
--- nginx_t_ok

=== TEST 81: amonitor_panel_token with read_only twice
--- http_config
    amonitor_zone amonitor 1m;
--- config
        location = /ws/panel { amonitor_panel on;
            amonitor_panel_token a read_only read_only; }
--- nginx_t_emerg: invalid parameter "read_only", expected "read_only" or "targets=id,prefix*,...", each at most once

=== TEST 82: amonitor_ssl_protocols given twice (nginx's bitmask would OR them)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_ssl_protocols TLSv1.2;
    amonitor_ssl_protocols TLSv1.3;
--- nginx_t_emerg: "amonitor_ssl_protocols" directive is duplicate
--- nginx_t_emerg_line: amonitor_ssl_protocols TLSv1.3

=== TEST 83: amonitor_ssl_name ""
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_ssl_name "";
--- nginx_t_emerg: "amonitor_ssl_name" must not be empty

=== TEST 84: amonitor_audit_log "" (the lines would go to the error log)
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_audit_log "";
--- nginx_t_emerg: "amonitor_audit_log" needs a file path (without the directive there is no audit log)

=== TEST 85: amonitor_audit_log off (would make a file named "off")
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_audit_log off;
--- nginx_t_emerg: "amonitor_audit_log" needs a file path (without the directive there is no audit log)

=== TEST 86: amonitor_allow_url with "#" in the path
--- http_config
    amonitor_zone amonitor 1m;
    amonitor_allow_url ws://127.0.0.1:9000/a#b;
--- nginx_t_emerg: invalid URL pattern "ws://127.0.0.1:9000/a#b": "*" may only end the path (a prefix), and "#" is not allowed
