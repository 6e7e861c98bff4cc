# A reload seen by a panel of another implementation: Python's websockets
# library (t/interop/reload_panel.py) reading behind and sending all the
# time.  asyncio drops what it has not read when a write fails, so a
# reset from the exiting worker (a close() with the panel's bytes still
# arriving) ends such a panel with 1006 and loses what was still in the
# socket.  The worker half-closes instead: the panel reads everything that
# was in flight and then its 1012.  Three rounds, each must end so.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Interop qw(run_panel python_websockets);

my $PY = '/usr/bin/python3';
python_websockets($PY);

my $t = Test::AMonitor->new(workers => 1);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_reconnect 50ms 300ms;
    amonitor_target py-reload ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 4096;
    amonitor_connection_buffer_limit 64m;
    amonitor_ping 0;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

for my $round (1 .. 3) {
    my @old = $t->worker_pids;

    my ($r) = run_panel([$PY, "$FindBin::Bin/interop/reload_panel.py"],
        'ws://127.0.0.1:' . $t->port(0) . '/ws/panel',
        '--sdk-port', $t->port(1), '--master-pid', $t->master_pid);

    ok($r && $r->{ev} eq 'closed', "round $round: the panel's connection"
        . ' ended') or diag(explain($r));
    is($r->{code}, 1012, "round $round: with 1012, after "
        . ($r->{events} // 0) . ' events (1006: without a close frame)');
    cmp_ok($r->{events} // 0, '>', 0, "round $round: the events in flight"
        . ' were read');

    ok(wait_for(sub { !grep { kill 0, $_ } @old }, tscale(8)),
        "round $round: the old worker exits");
    ok(wait_for(sub { my @w = $t->worker_pids; @w == 1 }, tscale(5)),
        "round $round: a new worker runs");
}

done_testing();
