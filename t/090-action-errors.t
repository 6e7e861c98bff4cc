# Every way an action can fail gives its error code within the configured
# time, in an error envelope whose msg_id is the action's, and every
# action ends in exactly one answer.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Mojo::IOLoop;
use JSON::PP ();

my $ACK_TIMEOUT = 1;    # seconds, as configured below
my $LATE_WINDOW = 2;    # amonitor_ack_late_window, seconds
my $SLACK = tscale(0.5);    # how much later than due an answer may come

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'er-ok',
    heartbeat_interval => 0);
my $slow = fake_sdk(port => $t->port(2), target_id => 'er-slow',
    heartbeat_interval => 0, no_ack => 1);
my $drop = fake_sdk(port => $t->port(3), target_id => 'er-drop',
    heartbeat_interval => 0);
my $stuck = fake_sdk(port => $t->port(5), target_id => 'er-stuck',
    heartbeat_interval => 0);
$stuck->pause_accept;    # TCP connects, the handshake never completes
my $down_port = $t->port(4);    # nothing listens there

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target er-ok ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target er-slow ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target er-drop ws://127.0.0.1:%%PORT_3%%/;
    amonitor_target er-down ws://127.0.0.1:%%PORT_4%%/;
    amonitor_target er-stuck ws://127.0.0.1:%%PORT_5%%/;
    amonitor_ack_timeout 1s;
    amonitor_ack_late_window 2s;
    amonitor_connect_timeout 10s;
    amonitor_reconnect 50ms 200ms;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
EOC
);
$t->run;

ok($sdk->wait_connections(1), 'er-ok is connected');
ok($slow->wait_connections(1), 'er-slow is connected');
ok($drop->wait_connections(1), 'er-drop is connected');

my $p = $t->panel('/ws/panel');
my %asked;    # msg_id => expected number of answers

sub send_action {
    my ($id, %o) = @_;
    my %env = (msg_id => $id, type => 'action', timestamp => now_ms(),
        payload => { action => $o{action} // 'restart', params => {} });
    $env{target_id} = $o{target_id} if defined $o{target_id};
    $env{payload}{target_url} = $o{target_url} if defined $o{target_url};
    delete $env{payload}{action} if $o{no_action};
    $asked{$id} = $o{answers} // 1;
    $p->send_json(\%env);
}

sub is_answer_to {
    my ($j, $id) = @_;
    return 0 unless ref $j eq 'HASH';
    my $type = $j->{type} // '';
    return 1 if $type eq 'error' && ($j->{msg_id} // '') eq $id;
    return $type eq 'action_ack' && ref $j->{payload} eq 'HASH'
        && ($j->{payload}{action_msg_id} // '') eq $id ? 1 : 0;
}

# send an action and wait for its answer; returns (answer, seconds)
sub ask {
    my ($id, %o) = @_;
    my $t0 = now_ms();
    send_action($id, %o);
    my $m = $p->recv_until(sub { is_answer_to($_[0]{json}, $id) },
        $o{timeout} // 5);
    return ($m ? $m->{json} : undef, (now_ms() - $t0) / 1000);
}

# an error about an action has the shape of an ack: code, message,
# action_msg_id, "success":false and "final" ($final, default true)
sub error_ok {
    my ($r, $id, $code, $name, $final) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $final //= 1;
    subtest $name => sub {
        ok($r, 'an answer came');
        is($r && $r->{type}, 'error', 'an error envelope');
        is($r && $r->{payload}{code}, $code, "code $code")
            or diag(encode_json($r // {}));
        is($r && $r->{msg_id}, $id, "msg_id is the action's");
        ok($r && length($r->{payload}{message} // ''), 'with a message');
        ok($r && $r->{timestamp} =~ /^\d+$/, 'and a timestamp');
        is_deeply([ sort keys %{ $r ? $r->{payload} : {} } ],
            [qw(action_msg_id code final message success)],
            'payload: code, message, action_msg_id, success, final');
        is($r && $r->{payload}{action_msg_id}, $id, 'action_msg_id');
        ok($r && JSON::PP::is_bool($r->{payload}{success})
            && !$r->{payload}{success}, '"success":false');
        ok($r && JSON::PP::is_bool($r->{payload}{final})
            && ($r->{payload}{final} ? 1 : 0) == $final,
            '"final":' . ($final ? 'true' : 'false'));
    };
}

subtest 'unknown target -> UNKNOWN_TARGET' => sub {
    my $id = uuid4();
    my ($r, $dt) = ask($id, target_id => 'no-such-target');
    error_ok($r, $id, 'UNKNOWN_TARGET', 'the error');
    is($r && $r->{target_id}, 'no-such-target', 'target_id echoed');
    cmp_ok($dt, '<', $SLACK, 'at once');
};

subtest 'URL not allowed -> TARGET_URL_NOT_ALLOWED' => sub {
    my $id = uuid4();
    my ($r, $dt) = ask($id, target_id => 'no-such-target',
        target_url => 'ws://127.0.0.1:' . free_port() . '/');
    error_ok($r, $id, 'TARGET_URL_NOT_ALLOWED', 'the error');
    cmp_ok($dt, '<', $SLACK, 'at once');

    $id = uuid4();
    ($r) = ask($id, target_url => 'ws://192.0.2.1:8765/');
    error_ok($r, $id, 'TARGET_URL_NOT_ALLOWED', 'only a target_url');
};

subtest 'SDK down -> TARGET_UNAVAILABLE' => sub {
    my $id = uuid4();
    my ($r, $dt) = ask($id, target_id => 'er-down');
    error_ok($r, $id, 'TARGET_UNAVAILABLE', 'the error');
    cmp_ok($dt, '<', $ACK_TIMEOUT + $SLACK, 'within the ack timeout');
};

subtest 'SDK accepts TCP but never completes the handshake' => sub {
    my $id = uuid4();
    my ($r, $dt) = ask($id, target_id => 'er-stuck');
    error_ok($r, $id, 'TARGET_UNAVAILABLE', 'the error');
    cmp_ok($dt, '<', $ACK_TIMEOUT + $SLACK, 'within the ack timeout');
};

subtest 'SDK never acks -> ACK_TIMEOUT after amonitor_ack_timeout' => sub {
    $t->mark_log;
    my $id = uuid4();
    my ($r, $dt) = ask($id, target_id => 'er-slow');
    error_ok($r, $id, 'ACK_TIMEOUT', 'the error, a progress notice', 0);
    is($slow->executed($id), 1, 'the SDK had received the action');
    cmp_ok($dt, '>=', $ACK_TIMEOUT - 0.05, 'not before the timeout');
    cmp_ok($dt, '<', $ACK_TIMEOUT + $SLACK, 'not much after it');
    note("ACK_TIMEOUT after ${dt}s");
    error_log_like(qr/\[error\].*no ack for action "\Q$id\E"/,
        'an error line names the action');

    # no ack in the late window either: the final ACK_TIMEOUT
    $asked{$id} = 2;
    my $t0 = now_ms();
    my $m = $p->recv_until(sub { is_answer_to($_[0]{json}, $id) },
        $LATE_WINDOW + 3);
    my $dt2 = (now_ms() - $t0) / 1000 + $dt;
    error_ok($m && $m->{json}, $id, 'ACK_TIMEOUT',
        'when the late window ends: ACK_TIMEOUT again, final', 1);
    cmp_ok($dt2, '>=', $ACK_TIMEOUT + $LATE_WINDOW - 0.05,
        'not before ack timeout + late window');
    cmp_ok($dt2, '<', $ACK_TIMEOUT + $LATE_WINDOW + $SLACK,
        'not much after it');
};

subtest 'staggered actions time out each at its own deadline' => sub {
    my @ids = (uuid4(), uuid4(), uuid4());
    my (%sent, %at, %final);
    for my $i (0 .. 2) {
        $sent{ $ids[$i] } = now_ms();
        send_action($ids[$i], target_id => 'er-slow', answers => 2);
        sleep_loop(0.3) if $i < 2;
    }
    # one acked meanwhile leaves the others' deadlines alone
    my ($ok) = ask(uuid4(), target_id => 'er-ok');
    is($ok && $ok->{type}, 'action_ack', 'an action acked meanwhile');
    my $m = $p->recv_until(sub {
        for my $id (@ids) {
            $at{$id} //= now_ms() if is_answer_to($_[0]{json}, $id);
        }
        return keys(%at) == 3;
    }, 5);
    ok($m, 'all three timed out');
    is_deeply([ sort { $at{$a} <=> $at{$b} } keys %at ], \@ids,
        'in the order they were sent');
    for my $id (@ids) {
        my $dt = ($at{$id} - $sent{$id}) / 1000;
        cmp_ok($dt, '>=', $ACK_TIMEOUT - 0.05,
            "not before its own timeout ($dt s)");
        cmp_ok($dt, '<', $ACK_TIMEOUT + $SLACK, 'nor much after it');
    }
    # then each ends when its late window does
    $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        for my $id (@ids) {
            $final{$id} //= now_ms() if is_answer_to($j, $id)
                && $j->{payload}{final};
        }
        return keys(%final) == 3;
    }, $LATE_WINDOW + 3);
    ok($m, 'the final ACK_TIMEOUT of each came');
    for my $id (@ids) {
        my $dt = (($final{$id} // 0) - $sent{$id}) / 1000;
        cmp_ok($dt, '>=', $ACK_TIMEOUT + $LATE_WINDOW - 0.05,
            "after ack timeout + late window ($dt s)");
        cmp_ok($dt, '<', $ACK_TIMEOUT + $LATE_WINDOW + $SLACK,
            'not much after it');
    }
};

subtest 'a late ack is still delivered and recorded' => sub {
    my $id = uuid4();
    my $ack_id = uuid4();
    # the SDK answers later, on the same connection
    $slow->set(on_action => sub {
        my ($s, $env, $conn) = @_;
        Mojo::IOLoop->timer(($ACK_TIMEOUT + 0.5) => sub {
            # send_to does nothing if the connection has ended meanwhile
            $s->send_to($conn, encode_json({ msg_id => $ack_id,
                type => 'action_ack', target_id => 'er-slow',
                timestamp => now_ms(), payload => {
                    action_msg_id => $env->{msg_id},
                    success => Mojo::JSON::true,
                    message => 'finished late' } }));
        });
        return;
    });
    $asked{$id} = 2;    # the error, then the late ack
    my ($r, $dt) = ask($id, target_id => 'er-slow', answers => 2);
    error_ok($r, $id, 'ACK_TIMEOUT', 'first the timeout error, not final',
        0);
    my $late = $p->recv_type('action_ack', action_msg_id => $id,
        timeout => 3);
    ok($late, 'then the late ack reaches the panel');
    is($late && $late->{json}{msg_id}, $ack_id, 'the SDK\'s own ack');
    is($late && $late->{json}{payload}{message}, 'finished late',
        'unchanged');
    ok($late && $late->{json}{payload}{final}, 'and final');
    $slow->set(on_action => undef);

    my $dup_id = $id;
    my ($d) = ask($dup_id, target_id => 'er-slow', answers => 2);
    ok($d && ($d->{payload}{message} // '') eq 'duplicate ignored',
        'a later duplicate is ignored')
        or diag(encode_json($d // {}));
    is($d && $d->{payload}{original}{message}, 'finished late',
        'and shows the late ack as "original"');
    $asked{$id} = 3;
    is($slow->executed($id), 1, 'executed once');
};

subtest 'SDK drops mid-action -> TARGET_DISCONNECTED' => sub {
    $drop->set(on_action => sub {
        my ($s) = @_;
        Mojo::IOLoop->next_tick(sub { $s->drop_all });
        return;
    }, no_ack => 1);
    my $id = uuid4();
    my ($r, $dt) = ask($id, target_id => 'er-drop');
    error_ok($r, $id, 'TARGET_DISCONNECTED', 'the error');
    cmp_ok($dt, '<', $SLACK, 'as soon as the connection dropped');
    is($drop->executed($id), 1, 'the SDK had received the action');
    $drop->set(on_action => undef, no_ack => 0);
    ok($drop->wait_connections(1, 5), 'the agent reconnects');
    # the SDK accepted; the agent has the target again once it read the
    # handshake answer, and then tells the panels
    ok($p->recv_type('target_status', target_id => 'er-drop', state => 'up',
        timeout => 5), 'the panel is told the target is up again');

    # closing with a Close frame instead of a TCP drop
    $drop->set(on_action => sub {
        my ($s) = @_;
        Mojo::IOLoop->next_tick(sub { $s->close_all(1011) });
        return;
    }, no_ack => 1);
    $id = uuid4();
    ($r, $dt) = ask($id, target_id => 'er-drop');
    error_ok($r, $id, 'TARGET_DISCONNECTED', 'after a close frame too');
    $drop->set(on_action => undef, no_ack => 0);
    ok($drop->wait_connections(1, 5), 'the agent reconnects again');
    ok($p->recv_type('target_status', target_id => 'er-drop', state => 'up',
        timeout => 5), 'and says so');
};

subtest 'actions without target or action -> INVALID_MESSAGE' => sub {
    my $id = uuid4();
    my ($r) = ask($id);
    error_ok($r, $id, 'INVALID_MESSAGE', 'no target_id, no target_url');
    $id = uuid4();
    ($r) = ask($id, target_id => '');
    error_ok($r, $id, 'INVALID_MESSAGE', 'an empty target_id');
    $id = uuid4();
    ($r) = ask($id, target_id => 'er-ok', no_action => 1);
    error_ok($r, $id, 'INVALID_MESSAGE', 'no payload.action');
    is($sdk->executed($id), 0, 'nothing was forwarded');

    # not JSON at all: the error has a msg_id of its own
    $p->send_text('{"msg_id": "broken-1", "type": "action", ');
    my $m = $p->recv_type('error', timeout => 5);
    ok($m, 'a frame that is not JSON gets an error');
    is($m && $m->{json}{payload}{code}, 'INVALID_MESSAGE', 'INVALID_MESSAGE');
    ok($m && length($m->{json}{msg_id} // ''), 'with a msg_id');
    ok($p->is_open, 'the panel stays connected');
};

subtest 'a working target still answers with its ack' => sub {
    my $id = uuid4();
    my ($r, $dt) = ask($id, target_id => 'er-ok');
    is($r && $r->{type}, 'action_ack', 'the SDK ack');
    ok($r && $r->{payload}{success}, 'success');
};

subtest 'every action ended in exactly one answer' => sub {
    sleep_loop(tscale(1.5));    # longer than the ack timeout
    my %n;
    for my $m ($p->messages) {
        my $j = $m->{json} or next;
        for my $id (keys %asked) {
            $n{$id}++ if is_answer_to($j, $id);
        }
    }
    my @bad = grep { ($n{$_} // 0) != $asked{$_} } sort keys %asked;
    is(scalar(@bad), 0, scalar(keys %asked) . ' actions, each answered '
        . 'as often as expected')
        or diag(join "\n", map { "$_: " . ($n{$_} // 0) . " answers, want "
            . $asked{$_} } @bad);
};

my $s = try_decode_json($t->http_get('/status')->{body}) // {};
cmp_ok($s->{ack_timeouts} // 0, '>=', 2,
    'amonitor_status counts the ack timeouts');
# the routing and delivery errors: UNKNOWN_TARGET, TARGET_URL_NOT_ALLOWED,
# TARGET_UNAVAILABLE, TARGET_DISCONNECTED (two of each but the first)
cmp_ok($s->{errors} // 0, '>=', 7, 'and the errors');

$p->close;
# er-stuck's handshake is still pending: the stop must not wait for it
my $t0 = now_ms();
$t->stop;
cmp_ok(now_ms() - $t0, '<', 3000, 'nginx stops without waiting for the '
    . 'pending SDK handshake');
$stuck->resume_accept;

done_testing();
