# Interoperability with an independent implementation: Node's "ws"
# package (npm) as the SDK server and as the panel client
# (t/interop/node/sdk.js and t/interop/node/panel.js).  Heartbeats reach
# the panel byte for byte, actions and acks make the round trip unchanged,
# duplicates are answered by the agent, fragmented messages in both
# directions are reassembled, pings are answered on both legs.  ws checks
# the agent's frames strictly (masking, RSV bits, UTF-8, accept key).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
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

my @KIDS;

# start t/interop/node/sdk.js; returns { pid, log, port }
sub node_sdk {
    my (%o) = @_;
    my $log = current_nginx()->prefix . "/node-sdk-$o{port}.log";
    my @cmd = ($NODE, "$DIR/sdk.js", '--port', $o{port}, '--log', $log,
        map { ("--$_", $o{args}{$_}) } sort keys %{ $o{args} // {} });
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    my $ready = <$fh>;
    die "sdk.js did not start: " . ($ready // 'no output') . "\n"
        unless ($ready // '') =~ /READY/;
    my $sdk = { pid => $pid, fh => $fh, log => $log, port => $o{port} };
    push @KIDS, $sdk;
    return $sdk;
}

sub stop_node {
    my ($sdk) = @_;
    return unless $sdk->{pid};
    kill 'TERM', $sdk->{pid};
    wait_for(sub { waitpid($sdk->{pid}, WNOHANG) != 0 }, 5)
        or kill('KILL', $sdk->{pid});
    close $sdk->{fh};
    $sdk->{pid} = undef;
}

END { stop_node($_) for grep { $_->{pid} } @KIDS }

# the SDK's log: list of event hashes
sub events {
    my ($sdk, $ev) = @_;
    open(my $fh, '<:raw', $sdk->{log}) or return ();
    my @e = grep { defined } map { try_decode_json($_) } <$fh>;
    close $fh;
    return $ev ? grep { $_->{ev} eq $ev } @e : @e;
}

# run t/interop/node/panel.js URL STEPS... [options]; returns its JSON lines
sub node_panel {
    my ($url, @args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        exec($NODE, "$DIR/panel.js", $url, @args) or POSIX::_exit(127);
    }
    my @out;
    while (my $l = <$fh>) {
        my $j = try_decode_json($l);
        if ($j) {
            push @out, $j;
        }
        else {
            diag("panel.js: $l");
        }
    }
    close $fh;
    return @out;
}

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

subtest 'a heartbeat sent in four fragments arrives whole and unchanged'
    => sub {
    my @r = node_panel($URL, @TOK, '--target', 'node-frag', 'wait-type:heartbeat',
        'wait-type:heartbeat', 'wait-type:heartbeat');
    my %frag_sent = map { $_->{text} => 1 }
        grep { $_->{fragments} == 4 } events($frag, 'sent');
    ok(scalar(keys %frag_sent), 'the SDK sent fragmented heartbeats');
    my @mine = grep { $_->{text} && $frag_sent{ $_->{text} } } @r[1 .. 3];
    ok(@mine >= 1, 'a fragmented heartbeat reached the panel as one '
        . 'message with the same text (' . scalar(@mine) . ' of 3)');
};

subtest 'action and ack round trip, duplicate, fragmented action and ack'
    => sub {
    my $id1 = 'node-' . uuid4();
    my $id2 = 'node-' . uuid4();
    my $id3 = 'node-' . uuid4();
    my @r = node_panel($URL, @TOK, "action:$id1:restart",
        "action:$id1:restart", "action:$id2:restart:5", "action:$id3:dance");
    my ($a1, $dup, $a2, $a3) = @r[1 .. 4];

    my $j = try_decode_json($a1->{text} // '');
    ok($a1->{ok}, 'the action is answered');
    is($j && $j->{type}, 'action_ack', 'by an action_ack');
    is($j && $j->{payload}{action_msg_id}, $id1, 'matching action_msg_id');
    is($j && $j->{payload}{message}, 'restarted by node', 'from the SDK');
    is($j && $j->{trace_id}, "trace-$id1", 'trace_id carried through');
    my %sent = map { $_->{text} => 1 } events($sdk, 'sent');
    ok($a1->{text} && $sent{ $a1->{text} }, 'the ack bytes are the SDK\'s');

    my @recv = grep { ($_->{text} // '') =~ /\Q$id1\E/ }
        events($sdk, 'recv');
    is(scalar @recv, 1, 'the SDK received the action once');
    is($recv[0]{text}, $a1->{sent}, 'with the bytes the panel sent');

    $j = try_decode_json($dup->{text} // '');
    is($j && $j->{type}, 'action_ack', 'the duplicate is answered with an '
        . 'action_ack');
    like($j && $j->{payload}{message}, qr/duplicate ignored/,
        '"duplicate ignored"');
    is($j && $j->{payload}{action_msg_id}, $id1, 'for the same msg_id');
    is($j && $j->{payload}{original}{message}, 'restarted by node',
        'with the original result');

    $j = try_decode_json($a2->{text} // '');
    is($j && $j->{payload}{action_msg_id}, $id2,
        'an action sent in five fragments is acked');
    is((grep { ($_->{text} // '') eq $a2->{sent} } events($sdk, 'recv')),
        1, 'and reached the SDK whole and unchanged');

    $j = try_decode_json($a3->{text} // '');
    ok($j && defined $j->{payload}{success} && !$j->{payload}{success},
        'an unsupported action is acked with success false');
    is($j && $j->{payload}{message}, 'unsupported action: dance',
        'and the SDK\'s message');
};

subtest 'a fragmented ack from the SDK reaches the panel whole' => sub {
    my $id = 'node-frag-' . uuid4();
    my @r = node_panel($URL, @TOK, '--target', 'node-frag',
        "action:$id:restart");
    my $j = try_decode_json($r[1]{text} // '');
    is($j && $j->{payload}{action_msg_id}, $id, 'acked');
    my %sent = map { $_->{text} => 1 }
        grep { $_->{fragments} == 3 } events($frag, 'sent');
    ok($r[1]{text} && $sent{ $r[1]{text} },
        'the ack the SDK sent in three fragments, as one message, unchanged');
};

subtest 'routing by target_url as existing tools send it' => sub {
    my $id = 'node-url-' . uuid4();
    my @r = node_panel($URL, @TOK, '--target', 'demo-target', '--target-url',
        'ws://127.0.0.1:' . $t->port(2), "action:$id:restart");
    my $j = try_decode_json($r[1]{text} // '');
    is($j && $j->{type}, 'action_ack', 'an unknown target_id with a known '
        . 'URL reaches the SDK of that URL');
    ok((grep { ($_->{text} // '') =~ /\Q$id\E/ } events($frag, 'recv')),
        'the SDK at that URL got it');
};

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

stop_node($_) for @KIDS;
done_testing();
