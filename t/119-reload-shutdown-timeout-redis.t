# worker_shutdown_timeout with the dedupe table in Redis, alone and with
# amonitor_cluster: when the timeout passes, nginx closes every
# connection of the old worker, the Redis ones too (a panel that never
# reads keeps the worker until then).  The worker exits at nginx's limit
# and nothing crashes (a build crashed in the Redis connection's read
# handler there).  Starts its own redis-server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::Raw qw(raw_ws_connect slow_panel);
use Time::HiRes qw(time);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);

for my $mode ('redis', 'cluster') {
    my $t = Test::AMonitor->new(workers => 1);

    # 20 kB heartbeats, 20 a second: a panel that never reads is soon behind
    my $sdk = fake_sdk(target_id => "sr-$mode", heartbeat_interval => 0.05,
        metrics => { cpu_percent => '1.5', pad => 'x' x 20000 });

    my $cluster = $mode eq 'cluster'
        ? "amonitor_cluster on lease=2s;\n    amonitor_instance_id A;" : '';

    $t->write_config(
        main_config => 'worker_shutdown_timeout 300ms;',
        http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_redis ${\ $redis->addr } prefix=$mode: timeout=300ms;
    $cluster
    amonitor_target sr-$mode ${\ $sdk->url };
    amonitor_send_queue 4096;
    amonitor_connection_buffer_limit 64m;
    amonitor_ping 0;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }',
    )->run;

    ok($sdk->wait_connections(1, 5), "$mode: the SDK is connected");

    my ($never, $r1) = slow_panel($t->port(0), '/ws/panel');
    ok($never, "$mode: a panel that will never read") or diag($r1);
    sleep_loop(1.5);

    my @old = $t->worker_pids;
    my $t0 = time;
    ok($t->reload, "$mode: reload");
    ok(wait_for(sub { !grep { kill 0, $_ } @old }, 6),
        "$mode: the old worker exits");
    my $took = time - $t0;
    cmp_ok($took, '<', 2, sprintf("$mode: at worker_shutdown_timeout 300ms, "
        . 'not after the 3 s the module would wait for the panel (%.2f s)',
        $took));
    $t->no_error_log(qr/exited on signal/, "$mode: no worker crashed");

    ok($sdk->wait_connections(1, 5), "$mode: the new worker has the SDK");
    $t->stop;
    $sdk->stop;
}

done_testing();
