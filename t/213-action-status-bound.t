# action_status queries that wait for Redis are bounded per panel: at most
# amonitor_send_queue of one panel wait for the store; past that a query
# gets RATE_LIMITED at once (it used to be kept, with its Redis command,
# for as long as Redis took: 100,000 of them from one panel while Redis
# was paused took the worker from 7 MB to 99 MB).  Once Redis answers,
# the waiting ones are answered and the panel may ask again; another
# panel keeps its own allowance.  Starts its own redis-server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::Util qw(tscale);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $t = Test::AMonitor->new(workers => 1);
$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-q: timeout=5s lease=15s;
    amonitor_send_queue 64;
    amonitor_target a ws://127.0.0.1:%%PORT_1%%/;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($t->wait_error_log(qr/connected to redis/, 5), 'connected to redis');

my $pa = $t->panel('/ws/panel');
my $pb = $t->panel('/ws/panel');

# answers to q0 .. q(n-1): type or error code => count
sub answers {
    my ($p, $n) = @_;
    my %got;
    my $seen = 0;
    $p->recv_until(sub {
        my $j = $_[0]{json};
        return 0 unless ref $j eq 'HASH' && ($j->{msg_id} // '') =~ /^q\d+$/;
        my $k = $j->{type} eq 'error' ? $j->{payload}{code}
            : "$j->{type}:" . ($j->{payload}{state} // '');
        $got{$k}++;
        return ++$seen == $n;
    }, tscale(20));
    return \%got;
}

subtest 'queries waiting for a paused Redis are bounded' => sub {
    is($redis->cli('CLIENT', 'PAUSE', '2000', 'ALL'), 'OK', 'redis paused');
    $pa->send_json({ msg_id => "q$_", type => 'action_status',
        payload => { action_msg_id => "never-sent-$_" } }) for 0 .. 299;
    $pa->flush;

    my $got = answers($pa, 300);
    is($got->{RATE_LIMITED} // 0, 236, '236 RATE_LIMITED')
        or diag(explain($got));
    is($got->{'action_status:unknown'} // 0, 64,
        '64 answered once Redis is back');
    ok($pa->is_open, 'the panel stays open');
};

subtest 'the other panel has its own allowance, then both ask again' => sub {
    is($redis->cli('CLIENT', 'PAUSE', '1000', 'ALL'), 'OK', 'redis paused');
    $pa->send_json({ msg_id => "q$_", type => 'action_status',
        payload => { action_msg_id => "a-$_" } }) for 0 .. 79;
    $pb->send_json({ msg_id => "q$_", type => 'action_status',
        payload => { action_msg_id => "b-$_" } }) for 0 .. 9;
    $pa->flush;
    $pb->flush;

    my $b = answers($pb, 10);
    is($b->{'action_status:unknown'} // 0, 10, 'the other panel: all 10');
    my $a = answers($pa, 80);
    is($a->{'action_status:unknown'} // 0, 64, 'this one: 64')
        or diag(explain($a));

    $pa->send_json({ msg_id => 'q0', type => 'action_status',
        payload => { action_msg_id => 'again' } });
    my $again = answers($pa, 1);
    is($again->{'action_status:unknown'} // 0, 1, 'and may ask again');
};

$t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->stop;
$redis->stop;

done_testing;
