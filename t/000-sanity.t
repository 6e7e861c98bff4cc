# Sanity: the module loads into the nginx binary under test (the system
# /usr/sbin/nginx by default), nginx serves and stops cleanly with it, and
# the shortest useful path works: SDK heartbeat -> agent -> panel, panel
# action -> agent -> SDK -> ack -> panel.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new;

subtest 'the module is built for this nginx' => sub {
    ok(-f $t->module_path, 'module file ' . $t->module_path . ' exists');
    my $v = `"${\ $t->binary}" -V 2>&1`;
    like($v, qr/nginx\/1\.22\.1/, 'nginx 1.22.1');
    like($v, qr/--with-compat/, 'binary built --with-compat');

    my ($st, $out) = $t->nginx_t(config => 'location / { return 204; }');
    is($st, 0, 'nginx -t with load_module passes') or diag($out);
    like($out, qr/syntax is ok/, 'syntax is ok');
    unlike($out, qr/not binary compatible|\[emerg\]|\[alert\]/,
        'the module is not rejected');
};

subtest 'directives are known to nginx' => sub {
    my ($st, $out) = $t->nginx_t(
        http_config => <<'EOC',
    amonitor_zone amonitor 1m;
    amonitor_target demo-target-a ws://127.0.0.1:%%PORT_1%%/;
EOC
        config => <<'EOC');
        location = /ws/panel { amonitor_panel on; }
        location = /amonitor/status { amonitor_status; }
EOC
    is($st, 0, 'a minimal agent config passes nginx -t') or diag($out);
};

run_tests();

__DATA__

=== TEST 1: nginx starts with the module loaded and serves a plain location
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

=== TEST 2: a heartbeat of the SDK reaches a panel and an action is acked
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

=== TEST 3: two workers each connect to the SDK and stop cleanly
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
