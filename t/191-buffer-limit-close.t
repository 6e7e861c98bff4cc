# The close for amonitor_connection_buffer_limit, when the frame that
# passes the limit is smaller than the close frame itself: panels that
# never read (a tiny socket buffer on both sides) get a burst of small
# protobuf heartbeats, so that the 1008 close frame queued after the
# limit is passed would pass it again.  Each such panel is closed once:
# one info line, one count, and its close frame is 1008 with the
# documented reason (the close frame is not itself refused by the limit,
# which would have left the panel without one); the worker lives on and
# a panel that reads gets every heartbeat.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $LIMIT = 66560;    # 65k: the least with amonitor_max_message_size 1k
my $SLOW = 4;
my $BURST = 6000;
my $REASON = 'over amonitor_connection_buffer_limit';
my $CLOSE = 2 + 2 + length $REASON;    # the close frame on the wire

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $sdk = fake_sdk(port => $t->port(1), target_id => 'bl-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target bl-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_max_message_size 1k;
    amonitor_connection_buffer_limit 65k;
    amonitor_send_queue 65536;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
        location = /metrics { amonitor_metrics; }
    }
    # panels that do not read connect here: what they leave unread piles
    # up in the module's queue rather than in nginx's socket buffer
    server {
        listen 127.0.0.1:%%PORT_2%% sndbuf=4k;
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

# the few protobuf fields a heartbeat needs: with a short msg_id the frame
# is about 30 bytes, less than the 41 of the close frame
sub pb_varint {
    my ($v) = @_;
    my $out = '';
    while ($v >= 0x80) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v >>= 7;
    }
    return $out . chr($v);
}
sub pb_str { pb_varint(($_[0] << 3) | 2) . pb_varint(length $_[1]) . $_[1] }
sub heartbeat {
    my ($id) = @_;
    return pb_str(1, $id) . pb_str(3, 'heartbeat') . pb_str(4, 'bl-a')
        . pb_varint(5 << 3) . pb_varint(now_ms());
}

sub status { try_decode_json($t->http_get('/status')->{body}) // {} }

ok($sdk->wait_connections(1), 'the worker dialed the SDK');
my @pids = $t->worker_pids;

my @slow;
for my $i (1 .. $SLOW) {
    my $s = slow_panel($t->port(2), '/ws/panel', -rcvbuf => 2048);
    push @slow, $s if $s;
}
is(scalar @slow, $SLOW, "$SLOW panels that never read are connected");

my $fast = $t->panel('/ws/panel');
ok(wait_for(sub { (status()->{panels} // 0) == $SLOW + 1 }, 5),
    'and one that reads');

$t->mark_log;

cmp_ok(2 + length heartbeat('h9999'), '<', $CLOSE,
    'a heartbeat frame is smaller than the close frame');

my $got = 0;
my $drain = sub {
    while (my $m = $fast->recv(0)) {
        $got++ if ($m->{type} // '') eq 'binary';
    }
};
for my $i (1 .. $BURST) {
    $sdk->send_all_binary(heartbeat("h$i"));
    next if $i % 100;
    sleep_loop(0.005);
    $drain->();
}
$sdk->send_all_binary(heartbeat('h-last'));

ok(wait_for(sub { $drain->(); (status()->{oversize} // 0) >= $SLOW }, 10),
    'every panel that does not read passed the limit');

# each one reads now: what the kernel held, then the close frame
for my $i (0 .. $#slow) {
    my ($f, $frames, $close) = (undef, 0, undef);
    my $end = now_ms() + 2500;
    while (now_ms() < $end) {
        $f = raw_read_frame($slow[$i], 1) or next;
        last if $f->{eof};
        if ($f->{opcode} == 8) {
            $close = $f;
            last;
        }
        $frames++;
    }
    ok($close, "panel " . ($i + 1) . " got a close frame after $frames "
        . "heartbeats") or diag('it got ' . ($f && $f->{eof}
            ? 'the end of the connection without one' : 'nothing'));
    is($close && $close->{close_code}, 1008, '... with code 1008');
    is($close && $close->{close_reason}, $REASON, "... and \"$REASON\"");
    ok(wait_for(sub { raw_eof($slow[$i]) }, 5),
        '... then the connection ended');
}

my $re = qr/\[info\] .*amonitor: panel #(\d+) closed: it does not read, (\d+) bytes held and (\d+) more would pass amonitor_connection_buffer_limit $LIMIT(?: while |, |$)/;
my @lines = grep { $_ =~ $re } split /\n/, $t->read_error_log;
is(scalar @lines, $SLOW, "one info line per panel closed ($SLOW)")
    or diag(join "\n", @lines);
my %ids;
for (@lines) {
    my ($id, $held, $more) = $_ =~ $re;
    $ids{$id}++;
    cmp_ok($held + $more, '>', $LIMIT, "panel #$id: $held bytes held and "
        . "$more more pass the limit");
    cmp_ok($held + $CLOSE, '>', $LIMIT, "panel #$id: so would its close "
        . "frame ($CLOSE bytes)");
}
is(scalar keys %ids, $SLOW, 'each line names another panel');

is(status()->{oversize}, $SLOW, "amonitor_status counts $SLOW");
like($t->http_get('/metrics')->{body},
    qr/^amonitor_oversize_closes_total $SLOW$/m, 'and amonitor_metrics');

ok(wait_for(sub { $drain->(); $got >= $BURST + 1 }, 10),
    'the panel that reads got every heartbeat')
    or diag("it got $got of " . ($BURST + 1));
is($fast->is_open, 1, 'and is still open');
is(status()->{panels}, 1, 'the other panels are gone');

is_deeply([$t->worker_pids], \@pids, 'the worker is the same process');
no_error_log(qr/exited on signal|\[alert\]|\[crit\]/,
    'no worker died, nothing at alert or crit');

$fast->close(1000);
close $_ for @slow;

done_testing();
