# docs/protocol.md, the cases that are configuration + messages in +
# messages out: the page's JSON examples are what the agent sends, byte
# shape and member order included (error, duplicate ack, action_status),
# ACK_TIMEOUT as a progress notice then the late ack, and the late window.
# The statements that need timing, several panels or SDK-side bytes are in
# t/170-protocol-conformance.t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

run_tests();

__DATA__

=== TEST 1: an error about an action: the example of "Replies correlate"
--- http_config
    amonitor_zone amon 1m;
    amonitor_target b-a ws://127.0.0.1:%%PORT_1%%/;
--- fake_sdk
port=PORT_1 target_id=b-a heartbeat_interval=0
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"e-1","trace_id":"tr-e1","type":"action","target_id":"b-nope","payload":{"action":"restart"}}
< ^\{"msg_id":"e-1","trace_id":"tr-e1","type":"error","target_id":"b-nope","timestamp":\d+,"payload":\{"code":"UNKNOWN_TARGET","message":"no such target","action_msg_id":"e-1","success":false,"final":true\}\}$
> {"msg_id":"e-2","type":"action","payload":{"action":"restart","target_url":"ws://127.0.0.1:1/z"}}
< ^\{"msg_id":"e-2","type":"error","target_id":"ws://127.0.0.1:1/z","timestamp":\d+,"payload":\{"code":"TARGET_URL_NOT_ALLOWED","message":"[^"]+","action_msg_id":"e-2","success":false,"final":true\}\}$
--- sdk_actions: 0

=== TEST 2: errors about a message that is not an action: code and message only
--- http_config
    amonitor_zone amon 1m;
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"n-1","trace_id":"tr-n1","type":"whatever","payload":{}}
< ^\{"msg_id":"n-1","trace_id":"tr-n1","type":"error","timestamp":\d+,"payload":\{"code":"INVALID_MESSAGE","message":"unknown message type"\}\}$
> {"msg_id":"n-2","type":"action_status","payload":{}}
< ^\{"msg_id":"n-2","type":"error","timestamp":\d+,"payload":\{"code":"INVALID_MESSAGE","message":"[^"]+"\}\}$
> {"msg_id":"n-3","type":"action_status","payload":{"action_msg_id":"x","state":{}}}
< ^\{"msg_id":"n-3","type":"error","timestamp":\d+,"payload":\{"code":"INVALID_MESSAGE","message":"a field has the wrong type"\}\}$
> {"msg_id":"n-4","type":"action_status","payload":{"action_msg_id":"a\u0000"}}
< ^\{"msg_id":"n-4","type":"error","timestamp":\d+,"payload":\{"code":"INVALID_MESSAGE","message":"a field holds a NUL character[^"]*"\}\}$
> {"msg_id":
< ^\{"msg_id":"[0-9a-f-]{36}","type":"error","timestamp":\d+,"payload":\{"code":"INVALID_MESSAGE","message":"[^"]+"\}\}$
ping

=== TEST 3: a duplicate ack: the example of "One final answer", state done
--- http_config
    amonitor_zone amon 1m;
    amonitor_target b-a ws://127.0.0.1:%%PORT_1%%/;
--- fake_sdk
port=PORT_1 target_id=b-a heartbeat_interval=0 actions=restart:1:restarted
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"d-1","trace_id":"tr-d1","type":"action","target_id":"b-a","payload":{"action":"restart"}}
< ^\{"msg_id":"[0-9a-f-]{36}","trace_id":"tr-d1","type":"action_ack","target_id":"b-a","timestamp":\d+,"payload":\{"final":true,"action_msg_id":"d-1","success":true,"message":"restarted"\}\}$
> {"msg_id":"d-1","trace_id":"tr-d2","type":"action","target_id":"b-a","payload":{"action":"restart"}}
< ^\{"msg_id":"[0-9a-f-]{36}","trace_id":"tr-d2","type":"action_ack","target_id":"b-a","timestamp":\d+,"payload":\{"action_msg_id":"d-1","success":true,"message":"duplicate ignored","duplicate":true,"state":"done","original":\{"action_msg_id":"d-1","success":true,"message":"restarted"\},"final":true\}\}$
--- sdk_actions: 1

=== TEST 4: action_status: the example of "Asking for an outcome", done and unknown
--- http_config
    amonitor_zone amon 1m;
    amonitor_target b-a ws://127.0.0.1:%%PORT_1%%/;
--- fake_sdk
port=PORT_1 target_id=b-a heartbeat_interval=0 actions=restart:1:restarted
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"s-1","type":"action","target_id":"b-a","payload":{"action":"restart"}}
< "type":"action_ack".*"action_msg_id":"s-1"
> {"msg_id":"q1","type":"action_status","payload":{"action_msg_id":"s-1"}}
< ^\{"msg_id":"q1","type":"action_status","target_id":"b-a","timestamp":\d+,"payload":\{"action_msg_id":"s-1","state":"done","result":\{"action_msg_id":"s-1","success":true,"message":"restarted"\}\}\}$
> {"msg_id":"q2","trace_id":"tr-q2","type":"action_status","payload":{"action_msg_id":"s-never"}}
< ^\{"msg_id":"q2","trace_id":"tr-q2","type":"action_status","timestamp":\d+,"payload":\{"action_msg_id":"s-never","state":"unknown"\}\}$
--- sdk_actions: 1

=== TEST 5: ACK_TIMEOUT is a progress notice (final:false), the late ack the final answer
--- http_config
    amonitor_zone amon 1m;
    amonitor_target b-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 1s;
    amonitor_ack_late_window 3s;
--- fake_sdk
port=PORT_1 target_id=b-a heartbeat_interval=0 ack_delay=1.6 actions=restart:1:late
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"l-1","trace_id":"tr-l1","type":"action","target_id":"b-a","payload":{"action":"restart"}}
< ^\{"msg_id":"l-1","trace_id":"tr-l1","type":"error","target_id":"b-a","timestamp":\d+,"payload":\{"code":"ACK_TIMEOUT","message":"[^"]+","action_msg_id":"l-1","success":false,"final":false\}\}$
< ^\{"msg_id":"[0-9a-f-]{36}","trace_id":"tr-l1","type":"action_ack","target_id":"b-a","timestamp":\d+,"payload":\{"final":true,"action_msg_id":"l-1","success":true,"message":"late"\}\}$
> {"msg_id":"q-l","type":"action_status","payload":{"action_msg_id":"l-1"}}
< "payload":\{"action_msg_id":"l-1","state":"done","result":\{"action_msg_id":"l-1","success":true,"message":"late"\}\}
--- sdk_actions: 1

=== TEST 6: no ack in the late window either: ACK_TIMEOUT again, final:true, recorded as failed
--- http_config
    amonitor_zone amon 1m;
    amonitor_target b-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 1s;
    amonitor_ack_late_window 1s;
--- fake_sdk
port=PORT_1 target_id=b-a heartbeat_interval=0 no_ack=1
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"w-1","type":"action","target_id":"b-a","payload":{"action":"restart"}}
< "type":"error".*"code":"ACK_TIMEOUT".*"final":false
< ^\{"msg_id":"w-1","type":"error","target_id":"b-a","timestamp":\d+,"payload":\{"code":"ACK_TIMEOUT","message":"[^"]+","action_msg_id":"w-1","success":false,"final":true\}\}$
> {"msg_id":"w-1","type":"action","target_id":"b-a","payload":{"action":"restart"}}
< ^\{"msg_id":"[0-9a-f-]{36}","type":"action_ack","target_id":"b-a","timestamp":\d+,"payload":\{"action_msg_id":"w-1","success":false,"message":"duplicate ignored: the first attempt failed","duplicate":true,"state":"failed","original":\{"success":false,"code":"ACK_TIMEOUT","message":"[^"]+"\},"final":true\}\}$
> {"msg_id":"q-w","type":"action_status","payload":{"action_msg_id":"w-1"}}
< "payload":\{"action_msg_id":"w-1","state":"failed","result":\{"success":false,"code":"ACK_TIMEOUT","message":"[^"]+"\}\}
--- sdk_actions: 1

=== TEST 7: amonitor_ack_late_window 0: the first ACK_TIMEOUT is final
--- http_config
    amonitor_zone amon 1m;
    amonitor_target b-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 1s;
    amonitor_ack_late_window 0;
--- fake_sdk
port=PORT_1 target_id=b-a heartbeat_interval=0 no_ack=1
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"z-1","type":"action","target_id":"b-a","payload":{"action":"restart"}}
< ^\{"msg_id":"z-1","type":"error","target_id":"b-a","timestamp":\d+,"payload":\{"code":"ACK_TIMEOUT","message":"[^"]+","action_msg_id":"z-1","success":false,"final":true\}\}$
--- sdk_actions: 1

=== TEST 8: a duplicate while the first attempt is pending, on its connection: its own answer is still to come, so not final
--- http_config
    amonitor_zone amon 1m;
    amonitor_target b-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 5s;
--- fake_sdk
port=PORT_1 target_id=b-a heartbeat_interval=0 no_ack=1
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"p-1","type":"action","target_id":"b-a","payload":{"action":"restart"}}
wait 0.2
> {"msg_id":"p-1","trace_id":"tr-p","type":"action","target_id":"b-a","payload":{"action":"restart"}}
< ^\{"msg_id":"[0-9a-f-]{36}","trace_id":"tr-p","type":"action_ack","target_id":"b-a","timestamp":\d+,"payload":\{"action_msg_id":"p-1","success":false,"message":"duplicate ignored: the first attempt is still pending","duplicate":true,"state":"pending","final":false\}\}$
> {"msg_id":"q-p","type":"action_status","payload":{"action_msg_id":"p-1"}}
< ^\{"msg_id":"q-p","type":"action_status","timestamp":\d+,"payload":\{"action_msg_id":"p-1","state":"pending"\}\}$
--- sdk_actions: 1

=== TEST 9: an action refused for a root member of the wrong type still names its target and trace_id
--- http_config
    amonitor_zone amon 1m;
    amonitor_target b-a ws://127.0.0.1:%%PORT_1%%/;
--- fake_sdk
port=PORT_1 target_id=b-a heartbeat_interval=0
--- config
        location = /ws/panel { amonitor_panel on; }
--- ws_request: /ws/panel
--- ws_script
> {"msg_id":"f2","type":"action","target_id":"b-a","trace_id":7,"payload":{"action":"x"}}
< ^\{"msg_id":"f2","type":"error","target_id":"b-a","timestamp":\d+,"payload":\{"code":"INVALID_MESSAGE","message":"a field has the wrong type","action_msg_id":"f2","success":false,"final":true\}\}$
> {"trace_id":"T8","msg_id":"","type":"action","target_id":"b-a","payload":{"action":"x"}}
< ^\{"msg_id":"[0-9a-f-]{36}","trace_id":"T8","type":"error","target_id":"b-a","timestamp":\d+,"payload":\{"code":"INVALID_MESSAGE","message":"msg_id is missing or empty"\}\}$
--- sdk_actions: 0
