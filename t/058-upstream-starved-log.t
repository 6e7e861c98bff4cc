# A worker that cannot dial an SDK for want of connections says so once
# (worker_connections spent by panels: the worker's line), and, once
# panels leave, "connected to the SDK again" at error (it was an info
# "connected to the SDK", as if nothing had happened).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

sub run_case {
    my (%c) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info',
        ($c{wc} ? (worker_connections => $c{wc}) : ()));
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'st1',
        heartbeat_interval => 0);
    $t->write_config(
        main_config => $c{main} // '',
        http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target st1 ws://127.0.0.1:%%PORT_1%%/;
    amonitor_reconnect 100ms 200ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    $t->ignore_log(qr/worker_connections are not enough/);
    ok($sdk->wait_connections(1, 5), "$c{name}: the SDK is dialed");

    my @p;
    for (1 .. $c{panels}) {
        my $p = eval { $t->panel('/ws/panel', timeout => 1) };
        push @p, $p if $p && $p->is_open;
    }
    note(scalar(@p) . ' panels open');
    $t->mark_log;
    $sdk->drop_all;
    sleep_loop(2);

    ok($t->log_count($c{outage}) >= 1, "$c{name}: the outage is said")
        or diag($t->read_error_log);
    is($t->log_count(qr/\[alert\].*socket\(\) failed/), 0,
        "$c{name}: no alert per attempt");

    $_->close for @p;
    ok($t->wait_error_log(
            qr/\[error\].*connected to the SDK again after \d+ failed/, 10),
        "$c{name}: the end of the outage is said at error");
    ok($sdk->wait_connections(1, 5), "$c{name}: dialed again");
    $t->stop;
    $sdk->stop;
}

run_case(name => 'connections', wc => 40, panels => 45,
    outage => qr/\[error\].*no free connection to dial target "st1"/);

done_testing;
