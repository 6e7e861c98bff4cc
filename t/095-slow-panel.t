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
use IO::Select;
use POSIX ();
use Time::HiRes ();

my $EVENTS = 2000;
my $EVENT_SIZE = 2048;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $sdk = fake_sdk(port => $t->port(1), target_id => 'slow-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target slow-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 256;
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

# The fast panel is a separate process that does nothing but read: the
# test process itself also runs the fake SDK (and is not fast).  It
# reads raw frames and reports how many events it got, and when the
# last one came.
sub fast_reader {
    my ($sock, $n_events) = @_;
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $rd;
        $sock->blocking(1);
        my ($buf, $last, $order_ok, $prev, %seen) = ('', undef, 1, 0);
        my $sel = IO::Select->new($sock);
        syswrite($wr, "ready\n");
        READ: while (keys %seen < $n_events) {
            last unless $sel->can_read(5);
            my $r = sysread($sock, $buf, 1 << 20, length $buf);
            last unless $r;
            for (;;) {
                last if length $buf < 2;
                my ($b0, $b1) = unpack('CC', $buf);
                my ($len, $off) = ($b1 & 0x7f, 2);
                if ($len == 126) {
                    last if length $buf < 4;
                    ($len, $off) = (unpack('n', substr($buf, 2, 2)), 4);
                }
                elsif ($len == 127) {
                    last if length $buf < 10;
                    ($len, $off) = (unpack('Q>', substr($buf, 2, 8)), 10);
                }
                last if length $buf < $off + $len;
                my $head = substr($buf, $off, 30);
                substr($buf, 0, $off + $len, '');
                last READ if ($b0 & 0x0f) == 8;
                next unless $head =~ /^\{"msg_id":"ev-(\d+)"/;
                $seen{$1}++;
                $order_ok = 0 if $1 <= $prev;
                $prev = $1;
                $last = Time::HiRes::time() if $1 == $n_events;
            }
        }
        my $dups = grep { $seen{$_} > 1 } keys %seen;
        syswrite($wr, join(' ', scalar(keys %seen), $dups, $order_ok,
            defined $last ? int($last * 1000) : -1) . "\n");
        close $sock;
        POSIX::_exit(0);
    }
    close $wr;
    close $sock;
    $rd->blocking(0);
    return ($pid, $rd);
}

my ($fast_sock, $fresp) = raw_ws_connect($t->port(0), '/ws/panel');
ok($fast_sock, 'the fast panel connected') or diag($fresp);
my ($slow, $resp) = slow_panel($t->port(2), '/ws/panel');
ok($slow, 'a panel with a tiny receive buffer connected') or diag($resp);

# make sure both panels are registered before anything is counted: a
# heartbeat sent now reaches both (and nothing older is left unread:
# the one the SDK sends on open may come before or after the panels)
sub read_until_seq {
    my ($sock, $seq) = @_;
    for (1 .. 5) {
        my $f = raw_read_frame($sock, 5);
        return 0 if !$f || $f->{eof};
        return 1 if ($f->{payload} // '') =~ /"seq":"$seq"/;
    }
    return 0;
}
$sdk->heartbeat;
my $seq = $sdk->heartbeats;    # one connection: the seq of the last one
ok(read_until_seq($fast_sock, $seq), 'the fast panel is live');
ok(read_until_seq($slow, $seq), 'the slow panel is live');

$t->mark_log;
my $s0 = status();
is($s0->{dropped}, 0, 'nothing dropped yet');

my $pad = 'x' x $EVENT_SIZE;
my $fast_got = 0;    # events the fast reader got

subtest 'the fast panel receives every event promptly' => sub {
    my ($pid, $rd) = fast_reader($fast_sock, $EVENTS);
    my $line = '';
    wait_for(sub {
        sysread($rd, $line, 256, length $line);
        return $line =~ s/^ready\n//;
    }, 5);
    # quickly, but in bursts of 50 (100 KiB): the test machine may have
    # fewer cores than there are busy processes here, and a reader that
    # is not scheduled for a few milliseconds should not lose events
    # (a queue of 256 frames and the socket buffers hold more than that)
    my $t0 = now_ms();
    for my $i (1 .. $EVENTS) {
        $sdk->send_all('{"msg_id":"ev-' . $i . '","type":"event",'
            . '"target_id":"slow-a","timestamp":' . $t0 . ',"payload":'
            . '{"target_id":"slow-a","event_name":"flood","data":"' . $pad
            . '"}}');
        sleep_loop(0.005) if $i % 50 == 0;
    }
    wait_for(sub {
        my $n = sysread($rd, $line, 256, length $line);
        return $line =~ /\n/ || (defined $n && $n == 0);
    }, tscale(30));
    waitpid($pid, 0);
    my ($got, $dups, $order_ok, $last) = split ' ', $line;
    $fast_got = $got // 0;
    is($got, $EVENTS, "the fast panel received all $EVENTS events");
    is($dups, 0, 'each once');
    ok($order_ok, 'in order');
    my $dt = (($last // -1) > 0 ? $last - $t0 : now_ms() - $t0) / 1000;
    note(sprintf('last event after %.2f s (%.1f MB)', $dt,
        $EVENTS * $EVENT_SIZE / 1e6));
    cmp_ok($dt, '<', tscale(5), 'the last one within seconds');
};

# the fast reader has gone: wait until the agent noticed, so that it
# does not count what it can no longer send to it
ok(wait_for(sub { status()->{panels} == 1 }, 5), 'the fast reader is gone');
my $fast = $t->panel('/ws/panel', name => 'fast');

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
    my (%acks, $events, $heartbeats, $other, $frames, @hb_seq);
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
            push @hb_seq, $j->{payload}{metrics}{seq};
        }
        else {
            $other++;
            diag("unexpected frame: " . substr($fr->{payload} // '', 0, 200))
                if $other < 5;
        }
    }
    note("slow panel: $frames frames, $events events, $heartbeats "
        . "heartbeats (seq @hb_seq), dropped " . status()->{dropped});
    is(scalar(grep { ($acks{$_} // 0) == 1 } @slow_ids), scalar(@slow_ids),
        'every ack arrived, once');
    cmp_ok($events, '<', $EVENTS, 'some events were dropped for it');
    cmp_ok($events, '>', 0, 'the first ones were queued');

    my $s = status();
    # everything broadcast since the baseline either reached the slow
    # panel or was dropped for it
    my $broadcast = $s->{forwarded} - $s0->{forwarded};
    # (what the fast reader missed, if anything, is its own failure)
    my $slow_dropped = $s->{dropped} - ($EVENTS - $fast_got);
    is($events + $heartbeats + $slow_dropped, $broadcast,
        'delivered + dropped = broadcast, for the slow panel');
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
