# amonitor_cluster: the worker holding a target's connection is killed
# (kill -9) and the SDK is gone too (stopped at the same moment), so the
# owner's "down" is never said and nobody can connect again.  Every
# other worker had the target "up" (the owner said so), and kept it:
# panels were never told "down", the status said "up" ("remote":true) and
# amonitor_target_up stayed 1 on every instance, for good.  A worker that
# takes the lease over and cannot connect, while it had the target up at
# another worker, now says "down" to the whole cluster.  Then the SDK
# comes back and goes again: up and down everywhere, the metric with it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $sdk = fake_sdk(target_id => 'g1', heartbeat_interval => 0);
my $port = $sdk->port;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 2, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-g: timeout=300ms;
    amonitor_cluster on lease=1s;
    amonitor_instance_id $name;
    amonitor_target g1 ws://127.0.0.1:$port/;
    amonitor_reconnect 100ms 500ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }'
            . ' location = /status { amonitor_status; }'
            . ' location = /metrics { amonitor_metrics; }')->run;
    $t->ignore_log(qr/exited on signal 9|connect\(\) failed|cannot connect/);
    return $t;
}

my %I = map { $_ => agent($_) } qw(A B);

sub state_of {
    my ($t) = @_;
    my $s = try_decode_json($t->http_get('/status')->{body}) // {};
    my ($g) = grep { $_->{id} eq 'g1' } @{ $s->{targets} // [] };
    return ($g // {})->{state} // '';
}

sub up_metric {
    my ($t) = @_;
    my ($up) = $t->http_get('/metrics')->{body}
        =~ /^amonitor_target_up\{target="g1"\} (\d)$/m;
    return $up // -1;
}

sub everywhere {
    my ($want_state, $want_metric, $secs, $what) = @_;
    my $ok = wait_for(sub {
        !grep {
            my $t = $I{$_};
            # the status is answered by either worker: ask a few times
            (grep { state_of($t) ne $want_state } 1 .. 4)
                || up_metric($t) != $want_metric
        } keys %I;
    }, $secs);
    ok($ok, $what) or diag(join ', ', map {
        "$_: " . state_of($I{$_}) . '/' . up_metric($I{$_}) } sort keys %I);
}

ok($sdk->wait_connections(1, 5), 'g1 is dialed');
everywhere('up', 1, 10, 'g1 is up in every status and metric');

# panels on both instances (four each: most likely on both workers)
my @panels = map {
    my $n = $_;
    map { $I{$n}->panel('/ws/panel', name => "$n$_") } 1 .. 4
} sort keys %I;
sleep_loop(0.5);
$_->clear for @panels;

# the owner is killed and the SDK is gone at once
my ($owner) = ($redis->cli("GET", "amon-g:lease:g1") // "") =~ /^([AB]):/;
my ($pid) = ($redis->cli('GET', 'amon-g:lease:g1') // '') =~ /^[AB]:(\d+):/;
ok($pid, "instance $owner, worker $pid, holds g1");
ok(kill('KILL', $pid), 'the owner is killed');
$sdk->stop;

# every panel that was not the owner's hears "down"
my $lost = 0;
sleep_loop(0.2);
my @live = grep { $_->is_open } @panels;
for my $p (@live) {
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ($j->{type} // '') eq 'target_status'
            && ($j->{payload}{state} // '') eq 'down';
    }, 10);
    $lost++ unless $m;
}
ok(@live >= 4, scalar(@live) . ' panels were on the workers that live');
is($lost, 0, 'each of them is told g1 is down');
everywhere('backoff', 0, 10,
    'no status says up, amonitor_target_up is 0 on both instances');

# the SDK is back, then stops normally: the same everywhere
$sdk->start;
ok($sdk->wait_connections(1, 8), 'g1 is dialed again');
everywhere('up', 1, 10, 'up again everywhere');
$sdk->stop;
everywhere('backoff', 0, 10, 'and down everywhere once it stops');

# the owner killed while the SDK lives: another worker takes it over;
# then the SDK stops normally: nothing of the dead worker stays counted
$sdk->start;
ok($sdk->wait_connections(1, 8), 'g1 is dialed again');
everywhere('up', 1, 10, 'up everywhere');
($pid) = ($redis->cli('GET', 'amon-g:lease:g1') // '') =~ /^[AB]:(\d+):/;
ok($pid && kill('KILL', $pid), "its owner ($pid) is killed");
ok(wait_for(sub {
        my ($p) = ($redis->cli('GET', 'amon-g:lease:g1') // '')
            =~ /^[AB]:(\d+):/;
        $p && $p != $pid && $sdk->connections == 1;
    }, 10), 'another worker holds it, with one connection');
everywhere('up', 1, 10, 'still up everywhere');
$sdk->stop;
everywhere('backoff', 0, 10, 'down everywhere once the SDK stops');

$_->stop for values %I;
done_testing();
