# Interoperability with an independent implementation: Node's "ws"
# package (npm) as the SDK server and as the panel client
# (t/interop/node/sdk.js and t/interop/node/panel.js).  Heartbeats reach
# the panel byte for byte, actions and acks make the round trip unchanged,
# duplicates are answered by the agent, fragmented messages in both
# directions are reassembled, pings are answered on both legs, a panel
# that names its targets (?targets=, subscribe) gets theirs only.  ws checks
# the agent's frames strictly (masking, RSV bits, UTF-8, accept key).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Interop qw(events panel_checks start_sdk stop_sdk
    run_panel);
use POSIX qw(WNOHANG);

my $NODE = 'node';
my $DIR = "$FindBin::Bin/interop/node";

my $nv = `$NODE --version 2>&1`;
if ($? != 0) {
    fail("node is needed (apt-get install nodejs npm): $nv");
    done_testing();
    exit;
}
chomp $nv;

# the "ws" package: installed from package-lock.json when missing; a
# failed install fails the test (it is not skipped)
if (!-f "$DIR/node_modules/ws/package.json") {
    my $out = `cd "$DIR" && npm ci --no-audit --no-fund 2>&1`;
    if ($? != 0 || !-f "$DIR/node_modules/ws/package.json") {
        fail("npm ci in $DIR could not install ws:\n$out");
        done_testing();
        exit;
    }
    note("installed ws with npm ci");
}
my $wsv = `cd "$DIR" && $NODE -e 'process.stdout.write(require("ws/package.json").version)'`;
note("node $nv, ws $wsv");

sub node_sdk {
    my (%o) = @_;
    return start_sdk(run => [$NODE, "$DIR/sdk.js"], port => $o{port}, args => $o{args},
        log => current_nginx()->prefix . "/node-sdk-$o{port}.log");
}

sub stop_node { stop_sdk(@_) }

sub node_panel { run_panel([$NODE, "$DIR/panel.js"], @_) }

my $t = Test::AMonitor->new(workers => 2);
my $sdk = node_sdk(port => $t->port(1), args => { 'target-id' => 'node-sdk',
    token => 'node-token', 'hb-interval' => 0.3, 'ping-interval' => 0.2 });
my $frag = node_sdk(port => $t->port(2), args => { 'target-id' => 'node-frag',
    'hb-interval' => 0.3, 'fragment-heartbeat' => 4,
    'fragment-ack' => 3 });

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 50ms 300ms;\n"
        . "amonitor_ping 300ms;\n"
        . "amonitor_target node-sdk ws://127.0.0.1:%%PORT_1%%/node/path "
        . "token=node-token;\n"
        . "amonitor_target node-frag ws://127.0.0.1:%%PORT_2%%;",
    config => 'location = /ws/panel { amonitor_panel on; '
        . 'amonitor_panel_token panel-token; }',
)->run;

my $URL = $t->ws_url('/ws/panel');
my @TOK = ('--token', 'panel-token');

subtest 'the agent connects to the Node SDK from every worker' => sub {
    ok(wait_for(sub { events($sdk, 'connect') >= 2 }, 5),
        'the Node SDK saw two connections');
    my @c = events($sdk, 'connect');
    is($c[0]{path}, '/node/path', 'with the path of the URL');
    is($c[0]{auth}, 'Bearer node-token', 'and the Bearer token');
    is($c[0]{host}, '127.0.0.1:' . $t->port(1), 'and the Host');
    is(scalar(events($sdk, 'reject')), 0, 'none rejected');
    ok(wait_for(sub { events($frag, 'connect') >= 2 }, 5),
        'the second Node SDK too');
    is((events($frag, 'connect'))[0]{auth}, undef,
        'without a token: it has none');
};

subtest 'a heartbeat reaches the Node panel byte for byte' => sub {
    my @r = node_panel($URL, @TOK, 'wait-heartbeat', 'wait-heartbeat');
    ok($r[0]{ok}, 'the Node panel connected') or diag(explain \@r);
    my %sent = map { $_->{text} => 1 } events($sdk, 'sent'),
        events($frag, 'sent');
    for my $i (1, 2) {
        ok($r[$i]{ok}, "heartbeat $i received");
        ok($r[$i]{text} && $sent{ $r[$i]{text} },
            "heartbeat $i is exactly the text an SDK sent")
            or diag($r[$i]{text} // 'none');
    }
    like($r[1]{text} // '', qr/^\{"payload":/,
        'with the SDK\'s own formatting');
    like($r[1]{text} // '', qr/na\x{ef}ve \\u00ef \\\/ \x{2713}/,
        'non-ASCII and escapes untouched');
};

panel_checks(panel => \&node_panel, url => $URL, tok => \@TOK, tag => 'node',
    word => 'node', sdk => $sdk, frag => $frag, frag_port => $t->port(2));

subtest 'ping/pong on both legs; subprotocol; close' => sub {
    my @r = node_panel($URL, @TOK, '--subprotocol', 'amonitor.v1',
        'ping:hello', 'sleep:1.5', 'ping', 'close:1000');
    is($r[0]{subprotocol}, 'amonitor.v1', 'amonitor.v1 negotiated with ws');
    ok($r[1]{ok}, 'the agent answers the Node panel\'s ping');
    ok($r[2]{ok}, 'the panel (answering the agent\'s 300ms pings) is open '
        . 'after 1.5s');
    ok($r[2]{received} >= 1, 'and got heartbeats meanwhile');
    ok($r[2]{pings} >= 2, "ws saw the agent's pings ($r[2]{pings})");
    ok($r[3]{ok}, 'pong again');
    is($r[4]{code}, 1000, 'closed with 1000, echoed by the agent');

    # the Node SDK pings the agent every 0.2s and drops the connection
    # when a pong is missing: its connections are still the first ones
    is(scalar(events($sdk, 'close')), 0, 'the Node SDK (pinging every '
        . '0.2s) closed no connection');
    is(scalar(events($sdk, 'connect')), 2, 'and saw no reconnection');
    is(scalar(events($sdk, 'ping-timeout')), 0, 'no pong was missing');
    is(scalar(events($sdk, 'error'), events($frag, 'error')), 0,
        'ws reported no protocol error on the agent\'s frames');
    no_error_log(qr/no answer to ping/, 'the agent saw every pong');
};

subtest 'the Node panel with a wrong token gets 401' => sub {
    my @r = node_panel($URL, '--token', 'nope', 'ping');
    ok(!$r[0]{ok}, 'connection refused');
    is($r[0]{status}, 401, 'with 401');
};

subtest 'the Node SDK restarts: the agent reconnects, heartbeats flow'
    => sub {
    stop_node($sdk);
    sleep_loop(0.3);
    $sdk = node_sdk(port => $t->port(1), args => { 'target-id' => 'node-sdk',
        token => 'node-token', 'hb-interval' => 0.3 });
    ok(wait_for(sub { events($sdk, 'connect') >= 4 }, 5),
        'both workers reconnected to the new process');
    my @r = node_panel($URL, @TOK, 'wait-heartbeat', 'wait-heartbeat',
        'wait-heartbeat');
    ok((grep { $_->{ok} } @r[1 .. 3]) == 3, 'heartbeats reach the panel');
};

subtest 'shutdown: the Node SDK sees 1001 from the agent' => sub {
    my $n = events($frag, 'close');
    ok($t->stop, 'nginx stops');
    ok(wait_for(sub { events($frag, 'close') >= $n + 2 }, 5),
        'both connections closed');
    my @codes = map { $_->{code} } (events($frag, 'close'))[-2, -1];
    is_deeply(\@codes, [1001, 1001], 'with 1001');
};

stop_node($_) for $sdk, $frag;
done_testing();
