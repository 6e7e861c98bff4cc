# Counter slots with many workers (see t/102): each worker process holds
# a slot of its own while there are enough (64), also across reloads,
# when old and new workers are alive together; beyond that, workers
# share a slot, which is then never cleared nor handed out, so nothing
# wraps below zero.  A shared slot wiped by a new owner made the gauges
# of the live sharers wrap (18446744073709551608 connections).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(tscale);

sub start {
    my ($n) = @_;
    my $t = Test::AMonitor->new(workers => $n);
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'c1',
        heartbeat_interval => 0);
    $t->write_config(
        http_config => <<'EOC',
    amonitor_zone amon 4m;
    amonitor_reconnect 100ms 300ms;
    amonitor_target c1 ws://127.0.0.1:%%PORT_1%%/;
EOC
        config => "location = /metrics { amonitor_metrics; }\n",
    )->run;
    my $metric = sub {
        my $b = $t->http_get('/metrics')->{body} // '';
        return $b =~ /^\Q$_[0]\E (\S+)$/m ? $1 : -1;
    };
    return ($t, $sdk, $metric);
}

subtest '40 workers: 8 killed, all cleared' => sub {
    my ($t, $sdk, $m) = start(40);
    ok(wait_for(sub { $m->('amonitor_upstream_connections') == 40 }, 10),
        '40 connections counted');
    my @pids = sort { $a <=> $b } $t->worker_pids;
    kill 'KILL', @pids[0 .. 7];
    ok(wait_for(sub {
        my @now = $t->worker_pids;
        @now == 40 && !grep({ my $p = $_; grep { $_ == $p } @pids[0 .. 7] }
            @now)
    }, tscale(10)), 'the master started 8 new workers');
    ok(wait_for(sub { $sdk->handshakes >= 48 }, 10), 'they dialed');
    ok(wait_for(sub { $m->('amonitor_upstream_connections') == 40 }, 5),
        '40 connections counted (' . $m->('amonitor_upstream_connections')
        . ')');
    $sdk->stop;
    ok(wait_for(sub { $m->('amonitor_upstream_connections') == 0 }, 5),
        'none after the SDK stopped ('
        . $m->('amonitor_upstream_connections') . ')');
    is($m->('amonitor_target_up{target="c1"}'), 0, 'c1 is down');
    $t->ignore_log(qr/\[alert\].*exited on signal 9|\[error\].*(?:connect\(\) failed|cannot connect)/);
    $t->stop;
};

subtest '20 workers, two reloads: 40 alive at once' => sub {
    my ($t, $sdk, $m) = start(20);
    ok(wait_for(sub { $m->('amonitor_upstream_connections') == 20 }, 10),
        'gen 1: 20 counted');
    for my $g (2, 3) {
        ok($t->reload, "reload $g");
        ok(wait_for(sub { $m->('amonitor_upstream_connections') == 20 }, 10),
            "gen $g: 20 counted (" . $m->('amonitor_upstream_connections')
            . ')');
    }
    $sdk->stop;
    ok(wait_for(sub { $m->('amonitor_upstream_connections') == 0 }, 5),
        'none after the SDK stopped ('
        . $m->('amonitor_upstream_connections') . ')');
    $t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
    $t->stop;
};

subtest '70 workers: 6 share a slot, nothing wraps' => sub {
    my ($t, $sdk, $m) = start(70);
    ok(wait_for(sub { $m->('amonitor_upstream_connections') == 70 }, 15),
        '70 connections counted');
    ok($t->reload, 'a reload: 140 workers alive for a while');
    ok(wait_for(sub { $m->('amonitor_upstream_connections') == 70 }, 15),
        '70 counted after it (' . $m->('amonitor_upstream_connections')
        . ')');
    $sdk->stop;
    ok(wait_for(sub { $m->('amonitor_upstream_connections') == 0 }, 5),
        'none after the SDK stopped ('
        . $m->('amonitor_upstream_connections') . ')');
    $t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
    $t->stop;
};

done_testing;
