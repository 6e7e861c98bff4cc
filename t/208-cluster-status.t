# amonitor_status in a cluster: only the worker holding a target's lease
# has a connection to it, and every other instance's status said
# "backoff" for it (what "amonitor watch" shows as down, "the SDK cannot
# be reached") while its metrics said amonitor_target_up 1 and its panels
# saw it up. A target up at its owner is now "up" in every instance's
# status, with "remote":true where the connection is another worker's;
# once the SDK is gone it is down everywhere.

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

my $sdk = fake_sdk(target_id => 'c1', heartbeat_interval => 0);
my $port = $sdk->port;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1);
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-s: timeout=500ms;
    amonitor_cluster on lease=1500ms;
    amonitor_instance_id $name;
    amonitor_target c1 ws://127.0.0.1:$port/;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /status { amonitor_status; }'
            . ' location = /metrics { amonitor_metrics; }')->run;
    return $t;
}

my %I = (A => agent('A'), B => agent('B'));

ok($sdk->wait_connections(1, 5), 'c1 is dialed');

sub state_of {
    my ($t) = @_;
    my $s = try_decode_json($t->http_get('/status')->{body}) // {};
    my ($c1) = grep { $_->{id} eq 'c1' } @{ $s->{targets} // [] };
    return $c1 // {};
}

sub up_metric {
    my ($t) = @_;
    my ($up) = $t->http_get('/metrics')->{body}
        =~ /^amonitor_target_up\{target="c1"\} (\d)$/m;
    return $up // -1;
}

# both instances know c1 is up (the other one through the cluster)
ok(wait_for(sub { !grep { up_metric($I{$_}) != 1 } keys %I }, 10),
    'both instances\' metrics say c1 is up');
is($sdk->connections, 1, 'c1 has one agent connection in the cluster');

my %st = map { $_ => state_of($I{$_}) } keys %I;
is($st{$_}{state}, 'up', "$_: the status says c1 is up") for sort keys %I;
ok(exists $st{$_}{remote}, "$_: the status has \"remote\"") for sort keys %I;
my @own = grep { !$st{$_}{remote} } keys %I;
is(scalar(@own), 1, 'one instance has the connection ("remote":false)');
my ($other) = grep { $_ ne $own[0] } keys %I;
ok($st{$other}{remote}, "the other ($other) says it is another's");

# the SDK goes: down everywhere, no longer "remote"
$sdk->stop;
ok(wait_for(sub { !grep { state_of($I{$_})->{state} eq 'up' } keys %I },
    10), 'once the SDK is gone no status says up');
ok(!state_of($I{$other})->{remote}, 'nor remote');

$_->stop for values %I;
$redis->stop;
done_testing();
