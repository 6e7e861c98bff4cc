# worker_shutdown_timeout is nginx's limit on an old worker's life after a
# reload, and it holds for panels that are behind too.  Without it, an old
# worker waits up to 3 s for a panel that never reads (its 1012 queued
# behind the frames it did not read, t/112); with it, nginx closes what is
# left when the timeout passes, and the panel still closing goes at once
# (before, its timer kept the worker for the whole 3 s).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Raw qw(raw_ws_connect raw_read_frame slow_panel);
use Time::HiRes qw(time);

my $t = Test::AMonitor->new(workers => 1);

# 20 kB heartbeats, 20 a second: a panel that never reads is soon behind
my $sdk = fake_sdk(port => $t->port(1), target_id => 'st-a',
    heartbeat_interval => 0.05,
    metrics => { cpu_percent => '1.5', pad => 'x' x 20000 });

$t->write_config(
    main_config => 'worker_shutdown_timeout 300ms;',
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target st-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 4096;
    amonitor_connection_buffer_limit 64m;
    amonitor_ping 0;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1, 5), 'the SDK is connected');

my ($never, $r1) = slow_panel($t->port(0), '/ws/panel');
ok($never, 'a panel that will never read') or diag($r1);
my ($fast, $r2) = raw_ws_connect($t->port(0), '/ws/panel');
ok($fast, 'a panel that reads') or diag($r2);
sleep_loop(1.5);

my @old = $t->worker_pids;
my $t0 = time;
ok($t->reload, 'reload');

# the panel that reads gets its 1012 as before
my $code;
while (my $f = raw_read_frame($fast, 5)) {
    last if $f->{eof};
    if ($f->{opcode} == 8) {
        $code = $f->{close_code};
        last;
    }
}
is($code, 1012, 'the panel that reads gets 1012');

ok(wait_for(sub { !grep { kill 0, $_ } @old }, 6), 'the old worker exits');
my $took = time - $t0;
note(sprintf('the old worker lived %.2f s after the reload', $took));
cmp_ok($took, '<', 2, sprintf('well before the 3 s the module would wait '
    . 'for the panel: worker_shutdown_timeout 300ms (%.2f s)', $took));

ok($sdk->wait_connections(1, 5), 'the new worker has the SDK');
$t->stop;
$sdk->stop;

done_testing();
