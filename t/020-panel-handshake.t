# The panel handshake, refused and accepted as HTTP: bad upgrades get
# 400/405/426 with a one-line reason; the panel token is checked, at the
# location or inherited from the server.  The handshake on the wire (the
# accept key, subprotocols, pipelined frames, split writes, tokens in a
# header or the query) is in t/021-panel-handshake-wire.t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

run_tests();

__DATA__

=== TEST 1: POST is answered 405 with Allow: GET and a reason
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"POST /ws/panel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 2\r\n\r\nhi"
--- response_code: 405
--- response_headers
Allow: GET
Content-Type: text/plain
--- response_body
websocket needs a GET request
--- error_log_like
\[info\] .*amonitor: panel handshake refused: websocket needs a GET request

=== TEST 2: a GET without Upgrade is answered 426 with Sec-WebSocket-Version: 13
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- request
GET /ws/panel
--- response_code: 426
--- response_headers
Sec-WebSocket-Version: 13
--- response_body
upgrade required

=== TEST 3: Sec-WebSocket-Version 8 is answered 426 with Sec-WebSocket-Version: 13
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"GET /ws/panel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
--- response_code: 426
--- response_headers
Sec-WebSocket-Version: 13
--- response_body
unsupported websocket version
--- error_log_like
\[info\] .*panel handshake refused: unsupported websocket version

=== TEST 4: no Sec-WebSocket-Version is answered 426
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"GET /ws/panel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
--- response_code: 426
--- response_headers
Sec-WebSocket-Version: 13
--- response_body
unsupported websocket version

=== TEST 5: a key that is not 16 bytes in base64 is answered 400
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"GET /ws/panel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\nSec-WebSocket-Version: 13\r\n\r\n"
--- response_code: 400
--- response_body
invalid websocket key

=== TEST 6: a key that is not base64 is answered 400
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"GET /ws/panel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: not a websocket key!!!!!\r\nSec-WebSocket-Version: 13\r\n\r\n"
--- response_code: 400
--- response_body
invalid websocket key

=== TEST 7: a missing key is answered 400
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"GET /ws/panel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
--- response_code: 400
--- response_body
missing websocket key
--- error_log_like
\[info\] .*panel handshake refused: missing websocket key

=== TEST 8: HTTP/1.0 is answered 400
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"GET /ws/panel HTTP/1.0\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
--- response_code: 400
--- response_body
websocket needs HTTP/1.1

=== TEST 9: Upgrade that is not websocket is answered 400
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"GET /ws/panel HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
--- response_code: 400
--- response_body
upgrade is not websocket

=== TEST 10: Connection without the upgrade token is answered 400
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; }
--- raw_request eval
"GET /ws/panel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
--- response_code: 400
--- response_body
connection header lacks upgrade

=== TEST 11: a panel with the right Bearer token is upgraded
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; amonitor_panel_token T0k3n; }
--- ws_request: /ws/panel
--- ws_headers
Authorization: Bearer T0k3n
--- ws_script
ping
> {"msg_id":"tok-1","type":"action","target_id":"nope","payload":{"action":"restart"}}
< "code":"UNKNOWN_TARGET"

=== TEST 12: a panel with a wrong Bearer token gets 401 and WWW-Authenticate
--- http_config
amonitor_zone amonitor 1m;
--- config
location = /ws/panel { amonitor_panel on; amonitor_panel_token T0k3n; }
--- ws_request: /ws/panel
--- ws_headers
Authorization: Bearer T0k3N
--- ws_handshake_status: 401
--- ws_response_headers_like
WWW-Authenticate: ^Bearer realm="amonitor"$
--- error_log_like
\[info\] .*amonitor: panel rejected: missing or wrong token

=== TEST 13: a panel token set at the server level applies to the panel location
--- http_config
amonitor_zone amonitor 1m;
--- config
amonitor_panel_token srv-token;
location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_handshake_status: 401

=== TEST 14: the location's own token overrides the server's
--- http_config
amonitor_zone amonitor 1m;
--- config
amonitor_panel_token srv-token;
location = /ws/panel { amonitor_panel on; amonitor_panel_token loc-token; }
--- ws_request: /ws/panel?token=loc-token
--- ws_script
ping
