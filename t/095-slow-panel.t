# A slow panel does not delay anyone: while one panel stops reading, a
# fast panel still receives every event promptly, the SDK connection
# keeps flowing (heartbeats, actions), the slow panel's heartbeats and
# events beyond amonitor_send_queue are dropped and counted (with a warn
# line), and its acks are never dropped: it gets them when it reads again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $EVENTS = 2000;
my $EVENT_SIZE = 2048;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $sdk = fake_sdk(port => $t->port(1), target_id => 'slow-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target slow-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 16;
    amonitor_ack_timeout 5s;
    amonitor_ping 0;
    amonitor_reconnect 50ms 500ms;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
    # slow panels connect here: a small send buffer on nginx's side, so
    # that what a panel does not read piles up in the module's queue
    # rather than in the kernel
    server {
        listen 127.0.0.1:%%PORT_2%% sndbuf=16k;
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed the SDK');

sub status { try_decode_json($t->http_get('/status')->{body}) // {} }

my $fast = $t->panel('/ws/panel', name => 'fast');
my ($slow, $resp) = slow_panel($t->port(2), '/ws/panel');
ok($slow, 'a panel with a tiny receive buffer connected') or diag($resp);

# make sure both panels are registered before anything is counted
$sdk->heartbeat;
ok($fast->recv_type('heartbeat', timeout => 5), 'the fast panel is live');
my $f = raw_read_frame($slow, 5);
ok($f && ($f->{payload} // '') =~ /"heartbeat"/, 'the slow panel is live');
$fast->clear;
my $fast_base = scalar($fast->messages);

$t->mark_log;
my $s0 = status();
is($s0->{dropped}, 0, 'nothing dropped yet');

my $pad = 'x' x $EVENT_SIZE;
my ($t0, $last_ms, %fast_seen);

subtest 'the fast panel receives every event promptly' => sub {
    $t0 = now_ms();
    for my $i (1 .. $EVENTS) {
        $sdk->send_all('{"msg_id":"ev-' . $i . '","type":"event",'
            . '"target_id":"slow-a","timestamp":' . $t0 . ',"payload":'
            . '{"target_id":"slow-a","event_name":"flood","data":"' . $pad
            . '"}}');
    }
    # read until all arrived, or nothing more came for a while
    my ($got, $last_rx) = (0, now_ms());
    wait_for(sub {
        while (my $m = shift @{ $fast->{queue} }) {
            $last_rx = now_ms();
            next unless $m->{data} =~ /^\{"msg_id":"ev-(\d+)"/;
            $fast_seen{$1}++;
            $got++;
            $last_ms = now_ms() if $1 == $EVENTS;
        }
        return $got >= $EVENTS || now_ms() - $last_rx > tscale(3) * 1000;
    }, tscale(20));
    is($got, $EVENTS, "the fast panel received all $EVENTS events");
    is(scalar(grep { $fast_seen{$_} != 1 } keys %fast_seen), 0,
        'each exactly once');
    my $dt = (($last_ms // now_ms()) - $t0) / 1000;
    note(sprintf('last event after %.2f s (%.1f MB)', $dt,
        $EVENTS * $EVENT_SIZE / 1e6));
    cmp_ok($dt, '<', tscale(5), 'the last one within seconds');
};

subtest "the slow panel's events are dropped and counted" => sub {
    my $s = status();
    cmp_ok($s->{dropped}, '>', 0, 'amonitor_status: dropped > 0');
    error_log_like(qr/\[warn\].*is slow/, 'a warn line says a panel is slow');
    ok(!raw_eof($slow), 'the slow panel is not disconnected for it');
};

my @slow_ids;
subtest 'the SDK connection is not stalled' => sub {
    $fast->clear;
    my $n = $sdk->heartbeats;
    for (1 .. 3) {
        $sdk->heartbeat;
        my $m = $fast->recv_type('heartbeat', timeout => 2);
        ok($m, 'a heartbeat reaches the fast panel at once');
    }

    my $id = uuid4();
    $fast->send_json({ msg_id => $id, type => 'action', target_id => 'slow-a',
        payload => { action => 'restart' } });
    ok($fast->recv_type('action_ack', action_msg_id => $id, timeout => 2),
        'an action of the fast panel is acked at once');

    # actions of the slow panel while its queue is full of events
    for (1 .. 10) {
        my $sid = uuid4();
        push @slow_ids, $sid;
        raw_send($slow, ws_frame(opcode => 'text', payload => encode_json({
            msg_id => $sid, type => 'action', target_id => 'slow-a',
            payload => { action => 'restart' } })));
    }
    ok(wait_for(sub { !grep { !$sdk->executed($_) } @slow_ids }, 5),
        'the slow panel\'s actions reach the SDK');
    ok(wait_for(sub { (grep { my $i = $_; grep {
        $_->{payload}{action_msg_id} eq $i } $sdk->acks } @slow_ids)
        == @slow_ids }, 5), 'and the SDK acks them');
};

subtest 'the slow panel gets its acks when it reads again' => sub {
    my (%acks, $events, $heartbeats, $other, $frames);
    ($events, $heartbeats, $other, $frames) = (0, 0, 0, 0);
    sleep_loop(0.3);
    for (;;) {
        my $fr = raw_read_frame($slow, 1);
        last if !$fr || $fr->{eof};
        $frames++;
        my $j = try_decode_json($fr->{payload} // '');
        my $type = ref $j eq 'HASH' ? $j->{type} // '' : '';
        if ($type eq 'action_ack') {
            $acks{ $j->{payload}{action_msg_id} }++;
        }
        elsif ($type eq 'event') {
            $events++;
        }
        elsif ($type eq 'heartbeat') {
            $heartbeats++;
        }
        else {
            $other++;
            diag("unexpected frame: " . substr($fr->{payload} // '', 0, 200))
                if $other < 5;
        }
    }
    note("slow panel: $frames frames, $events events, $heartbeats "
        . 'heartbeats');
    is(scalar(grep { ($acks{$_} // 0) == 1 } @slow_ids), scalar(@slow_ids),
        'every ack arrived, once');
    cmp_ok($events, '<', $EVENTS, 'some events were dropped for it');
    cmp_ok($events, '>', 0, 'the first ones were queued');

    my $s = status();
    # everything broadcast since the baseline either reached a panel or
    # was counted as dropped for it
    my $broadcast = $s->{forwarded} - $s0->{forwarded};
    my @fm = $fast->messages;
    my $fast_got = grep { ($_->{json}{type} // '') =~ /^(?:event|heartbeat)$/ }
        @fm[ $fast_base .. $#fm ];
    is($events + $heartbeats + $fast_got + $s->{dropped}, 2 * $broadcast,
        'delivered + dropped = broadcast, for the two panels');
    ok(!raw_eof($slow), 'the slow panel is still connected');

    # and it works normally now that it reads
    $sdk->heartbeat;
    my $fr = raw_read_frame($slow, 5);
    ok($fr && ($fr->{payload} // '') =~ /"heartbeat"/,
        'it receives new heartbeats again');
};

subtest 'a panel that never reads even its acks is closed with 1008' => sub {
    my ($dead) = slow_panel($t->port(2), '/ws/panel');
    ok($dead, 'another slow panel connected');
    # fill its socket and then its queue with events, in small batches
    # (so that it is the socket that fills), then acks beyond the
    # reserved slots
    my $d0 = status()->{dropped};
    my $i = 0;
    wait_for(sub {
        for (1 .. 10) {
            $i++;
            $sdk->send_all('{"msg_id":"ev2-' . $i . '","type":"event",'
                . '"target_id":"slow-a","payload":{"target_id":"slow-a",'
                . '"event_name":"flood","data":"' . $pad . '"}}');
        }
        sleep_loop(0.02);
        return status()->{dropped} > $d0 + 20;
    }, 20);
    cmp_ok(status()->{dropped}, '>', $d0 + 20,
        "its queue is full after $i events");
    # acks in waves (a panel may have amonitor_send_queue actions
    # waiting), until they fill the reserved slots too
    my (@ids, $closed);
    for my $wave (1 .. 20) {
        my @w = map { uuid4() } 1 .. 10;
        push @ids, @w;
        raw_send($dead, ws_frame(opcode => 'text', payload => encode_json({
            msg_id => $_, type => 'action', target_id => 'slow-a',
            payload => { action => 'restart' } })), 0.5) for @w;
        wait_for(sub { !grep { !$sdk->executed($_) } @w }, 2);
        $closed = wait_error_log(qr/\[warn\].*(?:does not read|cannot be queued)/,
            0.2) and last;
    }
    ok($closed, 'a warn line says the panel is closed for not reading');
    my $n = grep { $sdk->executed($_) } @ids;
    cmp_ok($n, '>=', 64, "its actions ($n) ran before that");
    is(status()->{panels}, 2, 'the agent dropped the panel (2 panels left)');

    # what it holds should end with a Close frame 1008
    my ($code, $ended, $frames) = (undef, 0, 0);
    wait_for(sub {
        my $fr = raw_read_frame($dead, 0.2);
        if (!$fr || $fr->{eof}) {
            # raw_read_frame cannot tell a cut frame from a timeout: ask
            # the socket (0 = EOF; ECONNRESET after a reset)
            my $n = sysread($dead, my $x, 1);
            $ended = 1 if $fr || (defined $n && $n == 0)
                || (!defined $n && !$!{EAGAIN} && !$!{EWOULDBLOCK});
            return $ended;
        }
        $frames++;
        $code = $fr->{close_code} if $fr->{opcode} == 8;
        return defined $code;
    }, 30);
    ok($ended || defined $code, 'its connection ended');
    is($code, 1008, 'with a Close frame 1008 (policy violation)')
        or diag("after $frames frames the connection ended without a "
            . 'Close frame');
    ok($fast->is_open, 'the fast panel is unaffected');
    close $dead;
};

$fast->close;
close $slow;

done_testing();
