# A reload while a panel is behind: the old worker still has frames
# queued for it (its socket is full), so its 1012 cannot go out at once.
# The worker keeps the connection a little (at most 3 s) instead of
# closing it with the end of a frame and no close frame (1006 for the
# panel), so a panel that reads again gets the 1012 that tells it to
# reconnect; then the old worker exits.  A panel that never reads does
# not hold the exit for longer than that, and a stop within the wait
# closes it too.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Raw qw(raw_ws_connect raw_read_frame slow_panel);
use Time::HiRes qw(time);

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'rb-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target rb-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 4096;
    amonitor_connection_buffer_limit 64m;
    amonitor_ping 0;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1, 5), 'the SDK is connected');

my ($behind, $r1) = slow_panel($t->port(0), '/ws/panel');
ok($behind, 'a panel that will read late') or diag($r1);
my ($never, $r2) = slow_panel($t->port(0), '/ws/panel');
ok($never, 'a panel that will never read') or diag($r2);
my ($fast, $r3) = raw_ws_connect($t->port(0), '/ws/panel');
ok($fast, 'a panel that reads') or diag($r3);
sleep_loop(0.3);

# 3,000 events of 2 KiB: more than the sockets hold, so the worker has
# frames queued for the two slow panels
my $pad = 'x' x 2048;
$sdk->emit_event('fill', $pad) for 1 .. 3000;
sleep_loop(1);

my @old = $t->worker_pids;
my $t0 = time;
ok($t->reload, 'reload');

# the panel that reads: its frames, then the 1012
my ($code, $n) = (undef, 0);
while (my $f = raw_read_frame($fast, 5)) {
    last if $f->{eof};
    $n++;
    if ($f->{opcode} == 8) {
        $code = $f->{close_code};
        last;
    }
}
is($code, 1012, "the panel that reads gets 1012 (after $n frames)");

# the one that is behind reads again half a second later
sleep_loop(0.5);
($code, $n) = (undef, 0);
my $eof = 0;
while (my $f = raw_read_frame($behind, 5)) {
    if ($f->{eof}) {
        $eof = 1;
        last;
    }
    $n++;
    if ($f->{opcode} == 8) {
        $code = $f->{close_code};
        last;
    }
}
is($code, 1012, "the panel that was behind gets 1012 too, after $n frames"
    . " (not the end of the connection without a close frame)")
    or diag($eof ? 'the connection ended without a close frame' : 'no end');

ok(wait_for(sub { !grep { kill 0, $_ } @old }, 5),
    'the old worker exits');
my $took = time - $t0;
cmp_ok($took, '<', tscale(3) + 2,
    sprintf('within the 3 s it waits for a panel that never reads '
        . '(%.2f s)', $took));

# A stop (TERM) within that wait: the old worker closes at its exit the
# panels it still waits for.  Before, they were left to the end of the
# process, and nginx said so: "open socket #N left in connection N" and
# "aborting" ([alert] lines, which fail this test's log check).
my ($late, $r4) = slow_panel($t->port(0), '/ws/panel');
ok($late, 'another panel that will read late') or diag($r4);
sleep_loop(0.3);
$sdk->emit_event('fill', $pad) for 1 .. 3000;
sleep_loop(1);
ok($t->reload, 'reload again');
ok($t->stop(signal => 'TERM'), 'a stop (TERM) right after it ends nginx');
no_error_log(qr/open socket|aborting/,
    'no socket of a panel still closing is left open at the exit');

done_testing();
