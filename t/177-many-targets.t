# More targets than the zone once tracked (512): every configured target
# has its state in the zone, so /metrics lists each of them, the last
# heartbeat of one far down the list is kept, and a new panel's snapshot
# names them all.  More targets than worker_connections: the worker keeps
# connections for its channel and for panels, says so once, and lives.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use IO::Socket::INET;

my $N = 1500;

# 1024 connections per worker (the default): dials to a closed port end
# at once, and at most 256 are started per pass of the event loop
my $t = Test::AMonitor->new(workers => 2, panel_snapshot => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 't1400',
    heartbeat_interval => 0.2);

# every target but t1400 dials a port nobody listens on: in backoff
my $targets = join '', map {
    $_ == 1400
        ? "    amonitor_target t$_ ws://127.0.0.1:%%PORT_1%%/;\n"
        : "    amonitor_target t$_ ws://127.0.0.1:%%PORT_2%%/t$_;\n"
} 1 .. $N;

$t->write_config(
    server      => 0,
    http_config => <<"EOC",
    amonitor_zone amon 4m;
    amonitor_reconnect 1s 10s;
$targets
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /metrics { amonitor_metrics; }
    }
EOC
)->run;

ok($sdk->wait_connections(2, 10), 'both workers dialed t1400');

my $body;
ok(wait_for(sub {
    $body = $t->http_get('/metrics')->{body} // '';
    $body =~ /^amonitor_target_last_heartbeat_age_seconds\{target="t1400"\}/m
}, 10), 'the heartbeat of the 1400th target is kept');

my %up = $body =~ /^amonitor_target_up\{target="(t\d+)"\} (\d+)$/mg;
is(scalar(keys %up), $N, "amonitor_target_up has a series for each of "
    . "the $N targets");
is($up{t1400}, 1, 't1400 is up');
is(scalar(grep { $_ } values %up), 1, 'and the others are down');

# a panel's snapshot: one target_status per target
my $p = $t->panel('/ws/panel');
my %seen;
ok(wait_for(sub {
    for my $m (grep { defined $_->{json} } $p->messages) {
        my $j = $m->{json};
        $seen{ $j->{payload}{target_id} // '' } = 1
            if ($j->{type} // '') eq 'target_status';
    }
    keys %seen >= $N
}, 15), "the snapshot names all $N targets (" . scalar(keys %seen) . ')');
$p->close;

$t->no_error_log(qr/state of target .* is not kept|no free connection/,
    'no target is refused a record or a connection');
$t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->stop;
$sdk->stop;

# 1500 targets, 300 connections per worker; the targets' port accepts
# connections (the kernel does, up to the backlog) and never answers, so
# that every dial holds its connection
my $s = Test::AMonitor->new(workers => 1, worker_connections => 300);
my $hold = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $s->port(2), Listen => 4096, Proto => 'tcp',
    ReuseAddr => 1) or die "listen: $!";
$targets =~ s/127\.0\.0\.1:%%PORT_1%%\//127.0.0.1:%%PORT_2%%\/t1400/;
$s->write_config(
    server      => 0,
    http_config => <<"EOC",
    amonitor_zone amon 4m;
    amonitor_reconnect 1s 10s;
    amonitor_connect_timeout 20s;
$targets
    server {
        listen 127.0.0.1:%%PORT_0%%;
        location = /ws/panel { amonitor_panel on; }
        location = /metrics { amonitor_metrics; }
    }
EOC
)->run;
ok(wait_error_log(qr/\[error\] .*amonitor: no free connection to dial target "t\d+".*300 worker_connections are not enough/, 5),
    'the worker says it has no connection left for the targets');
my $m = $s->http_get('/metrics');
is($m->{code}, 200, 'and still answers');
my $q = $s->panel('/ws/panel');
ok($q && $q->is_open, 'a panel still connects');
$q->close if $q;
sleep 1.5;
is($s->log_count(qr/no free connection/), 1, 'said once, not per target');
$s->no_error_log(qr/exited with fatal code|worker_connections are not enough while/,
    'the worker did not exit, nginx itself never ran out');
$s->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect|no free connection)/);
$s->stop;
close $hold;
done_testing;
