# Interoperability with an independent implementation: Python's
# websockets library (Debian python3-websockets) as the SDK server and as
# the panel client (t/interop/sdk.py and t/interop/panel.py).  Heartbeats
# reach the panel byte for byte, actions and acks make the round trip
# unchanged, duplicates are answered by the agent, fragmented messages in
# both directions are reassembled, pings are answered on both legs, a
# panel that names its targets (?targets=, subscribe) gets theirs only.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Interop qw(events panel_checks start_sdk stop_sdk
    run_panel python_websockets);
use POSIX qw(WNOHANG);

my $PY = '/usr/bin/python3';
my $DIR = "$FindBin::Bin/interop";

# the Debian interpreter with the Debian package; "python3" on PATH may be
# another build without it
note('python websockets ' . python_websockets($PY));

sub py_sdk {
    my (%o) = @_;
    return start_sdk(run => [$PY, "$DIR/sdk.py"], port => $o{port}, args => $o{args},
        log => current_nginx()->prefix . "/py-sdk-$o{port}.log");
}

sub stop_py { stop_sdk(@_) }

sub py_panel { run_panel([$PY, "$DIR/panel.py"], @_) }

my $t = Test::AMonitor->new(workers => 2);
my $sdk = py_sdk(port => $t->port(1), args => { 'target-id' => 'py-sdk',
    token => 'py-token', 'hb-interval' => 0.3,
    'ping-interval' => tscale(0.2) });
my $frag = py_sdk(port => $t->port(2), args => { 'target-id' => 'py-frag',
    'hb-interval' => 0.3, 'fragment-heartbeat' => 4,
    'fragment-ack' => 3 });

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 50ms 300ms;\n"
        . "amonitor_ping 300ms;\n"
        . "amonitor_target py-sdk ws://127.0.0.1:%%PORT_1%%/py/path "
        . "token=py-token;\n"
        . "amonitor_target py-frag ws://127.0.0.1:%%PORT_2%%;",
    config => 'location = /ws/panel { amonitor_panel on; '
        . 'amonitor_panel_token panel-token; }',
)->run;

my $URL = $t->ws_url('/ws/panel');
my @TOK = ('--token', 'panel-token');

subtest 'the agent connects to the Python SDK from every worker' => sub {
    ok(wait_for(sub { events($sdk, 'connect') >= 2 }, 5),
        'the Python SDK saw two connections');
    my @c = events($sdk, 'connect');
    is($c[0]{path}, '/py/path', 'with the path of the URL');
    is($c[0]{auth}, 'Bearer py-token', 'and the Bearer token');
    is($c[0]{host}, '127.0.0.1:' . $t->port(1), 'and the Host');
    is(scalar(events($sdk, 'reject')), 0, 'none rejected');
    ok(wait_for(sub { events($frag, 'connect') >= 2 }, 5),
        'the second Python SDK too');
    is((events($frag, 'connect'))[0]{auth}, undef,
        'without a token: it has none');
};

subtest 'a heartbeat reaches the Python panel byte for byte' => sub {
    my @r = py_panel($URL, @TOK, 'wait-heartbeat', 'wait-heartbeat');
    ok($r[0]{ok}, 'the Python panel connected') or diag(explain \@r);
    my %sent = map { $_->{text} => 1 } events($sdk, 'sent'),
        events($frag, 'sent');
    for my $i (1, 2) {
        ok($r[$i]{ok}, "heartbeat $i received");
        ok($r[$i]{text} && $sent{ $r[$i]{text} },
            "heartbeat $i is exactly the text an SDK sent")
            or diag($r[$i]{text} // 'none');
    }
    like($r[1]{text} // '', qr/^\{ "type" : "heartbeat"/,
        'with the SDK\'s own formatting');
    like($r[1]{text} // '', qr/caf\x{e9} \\u00e9/,
        'non-ASCII and escapes untouched');
};

panel_checks(panel => \&py_panel, url => $URL, tok => \@TOK, tag => 'py',
    word => 'python', sdk => $sdk, frag => $frag, frag_port => $t->port(2));

subtest 'ping/pong on both legs; subprotocol; close' => sub {
    my @r = py_panel($URL, @TOK, '--subprotocol', 'amonitor.v1',
        'ping:hello', 'sleep:1.5', 'ping', 'close:1000');
    is($r[0]{subprotocol}, 'amonitor.v1', 'amonitor.v1 negotiated with '
        . 'websockets');
    ok($r[1]{ok}, 'the agent answers the Python panel\'s ping');
    ok($r[2]{ok}, 'the panel (answering the agent\'s 300ms pings) is open '
        . 'after 1.5s');
    ok($r[2]{received} >= 1, 'and got heartbeats meanwhile');
    ok($r[3]{ok}, 'pong again');
    is($r[4]{code}, 1000, 'closed with 1000, echoed by the agent');

    # the Python SDK pings the agent every 0.2s (0.4s under the
    # sanitizers) and closes with 1011 when a pong is later than two of
    # those: its connections are still the first ones
    is(scalar(events($sdk, 'close')), 0, 'the Python SDK (pinging every '
        . tscale(0.2) . 's) closed no connection');
    is(scalar(events($sdk, 'connect')), 2, 'and saw no reconnection');
    no_error_log(qr/no answer to ping/, 'the agent saw every pong');
};

subtest 'the Python panel with a wrong token gets 401' => sub {
    my @r = py_panel($URL, '--token', 'nope', 'ping');
    ok(!$r[0]{ok}, 'connection refused');
    is($r[0]{status}, 401, 'with 401');
};

subtest 'the Python SDK restarts: the agent reconnects, heartbeats flow'
    => sub {
    stop_py($sdk);
    sleep_loop(0.3);
    $sdk = py_sdk(port => $t->port(1), args => { 'target-id' => 'py-sdk',
        token => 'py-token', 'hb-interval' => 0.3 });
    ok(wait_for(sub { events($sdk, 'connect') >= 4 }, 5),
        'both workers reconnected to the new process');
    my @r = py_panel($URL, @TOK, 'wait-heartbeat', 'wait-heartbeat',
        'wait-heartbeat');
    ok((grep { $_->{ok} } @r[1 .. 3]) == 3, 'heartbeats reach the panel');
};

subtest 'shutdown: the Python SDK sees 1001 from the agent' => sub {
    my $n = events($frag, 'close');
    ok($t->stop, 'nginx stops');
    ok(wait_for(sub { events($frag, 'close') >= $n + 2 }, 5),
        'both connections closed');
    my @codes = map { $_->{code} } (events($frag, 'close'))[-2, -1];
    is_deeply(\@codes, [1001, 1001], 'with 1001');
};

stop_py($_) for $sdk, $frag;
done_testing();
