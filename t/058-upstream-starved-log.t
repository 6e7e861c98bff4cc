# A worker that cannot dial an SDK for want of connections says so once
# (worker_connections spent by panels: the worker's line; descriptors
# spent: the outage's line with the system's reason, never nginx's
# socket() alert at every attempt), and, once
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

# out of descriptors (worker_rlimit_nofile) rather than connections: 60
# targets on an SDK that accepts nothing (each dial holds a descriptor
# until its handshake times out) and 40 descriptors.  nginx's socket()
# says "alert" at every failed attempt; the module says each target's
# outage once, with the system's reason
{
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info',
        worker_connections => 1024);
    my $hang = fake_sdk(port => $t->port(1), target_id => 'h',
        heartbeat_interval => 0);
    $hang->pause_accept;
    my $targets = join '', map {
        "    amonitor_target d$_ ws://127.0.0.1:%%PORT_1%%/d$_;\n" } 1 .. 60;
    $t->write_config(main_config => 'worker_rlimit_nofile 40;',
        http_config => <<"EOC",
    amonitor_zone amon 1m;
$targets    amonitor_reconnect 200ms 400ms;
    amonitor_connect_timeout 30s;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    # the harness's start probe (a connect to the panel port, closed at
    # once) can reach the listen queue after the dials have taken every
    # descriptor: nginx then retries its accept4() at crit every 500 ms,
    # and once more after the listening socket is closed at the stop
    # (EBADF, alert).  Those are nginx's own lines for a worker out of
    # descriptors, the state this block makes; anything else still fails
    # the final check
    $t->ignore_log(
        qr/\[crit\].*accept4\(\) failed \(24: Too many open files\)/,
        qr/\[alert\].*accept4\(\) failed \(9: Bad file descriptor\)/);
    my $outage = qr/\[error\].*cannot connect to the SDK: .*too many open files/;
    ok($t->wait_error_log($outage, 5),
        'descriptors: a target that gets none is in an outage, with the '
        . 'reason');
    sleep_loop(2);
    my $n = $t->log_count($outage);
    ok($n >= 1 && $n <= 60, "descriptors: said $n times for 60 targets "
        . 'over many attempts (once per target at most)');
    is($t->log_count(qr/\[alert\].*socket\(\) failed/), 0,
        'descriptors: no socket() alert per attempt');
    $t->stop;
    $hang->stop;
}

done_testing;
