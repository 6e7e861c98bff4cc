# A worker that cannot dial an SDK for want of connections says so once
# (worker_connections spent by panels: the worker's line; descriptors
# nearly spent by dials: the worker's line naming worker_rlimit_nofile,
# never nginx's socket() alert at every attempt, and panels still get
# in), and, once
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
# until its handshake times out) and 40 descriptors.  The dials leave 16
# descriptors free, as they leave 16 connections: the worker says so once
# (naming the limit) for all its targets, and neither nginx's socket()
# alert nor its accept4() crit ("Too many open files") ever comes; a
# few panels still get in.  With one worker and with three
sub descriptors_case {
    my ($workers) = @_;
    my $t = Test::AMonitor->new(workers => $workers, log_level => 'info',
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
    my $worker_line = qr/\[error\].*amonitor: no free descriptor to dial target "d\d+".*: 40 open files \(worker_rlimit_nofile\) are not enough .*, \d+ of them taken by other files/;
    ok($t->wait_error_log($worker_line, 5),
        "descriptors, $workers worker(s): the worker says it has no "
        . 'descriptor left for the targets, naming the limit');
    # each target is in an outage meanwhile, with this reason kept for
    # its later lines ("SDK still down: ... the last: ...").  Each
    # worker counts its channel, and the master's ends of the other
    # workers' channels, which it gets after it started, counted too
    for my $w ($t->worker_pids) {
        my @fds = glob("/proc/$w/fd/*");
        ok(@fds <= 40 - 16, "descriptors, $workers worker(s): the dials left "
            . '16 free (' . scalar(@fds) . ' of 40 open)');
    }
    my @q = grep { $_ && $_->is_open }
        map { eval { $t->panel('/ws/panel', timeout => 3) } } 1 .. 5;
    is(scalar(@q), 5, "descriptors, $workers worker(s): panels still connect");
    $_->close for @q;
    sleep_loop(2);
    is($t->log_count($worker_line), $t->effective_workers,
        "descriptors, $workers worker(s): each worker said it once");
    is($t->log_count(qr/\[alert\].*socket\(\) failed/), 0,
        "descriptors, $workers worker(s): no socket() alert per attempt");
    is($t->log_count(qr/Too many open files/i), 0,
        "descriptors, $workers worker(s): nothing ran out of descriptors");
    $t->stop;
    $hang->stop;
}

SKIP: {
    # valgrind refuses a worker's setrlimit(RLIMIT_NOFILE) (nginx logs
    # "setrlimit(RLIMIT_NOFILE, 40) failed" at alert): no limit to reach
    skip 'valgrind refuses worker_rlimit_nofile', 1
        if $ENV{TEST_NGINX_VALGRIND};
    descriptors_case(1);
    descriptors_case(3);
}

done_testing;
