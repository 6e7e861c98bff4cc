# amonitor_cluster: while an SDK is out of reach, the workers take its
# lease in turn (each releases it when its dial fails).  Each take said
# "this worker holds the connection to target" at info: a line every few
# hundred ms per instance for as long as the SDK stayed away.  Now a
# worker says it once per outage (its first failed dial begins the
# outage's own lines); the lines come back when the SDK does.

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

my $sdk = fake_sdk(target_id => 'q1', heartbeat_interval => 0);
my $sport = $sdk->port;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 2, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-q: timeout=300ms;
    amonitor_cluster on lease=1s;
    amonitor_instance_id $name;
    amonitor_target q1 ws://127.0.0.1:$sport/;
    amonitor_reconnect 50ms 200ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    $t->ignore_log(qr/q1|SDK/);
    return $t;
}

my @I = map { agent($_) } qw(A B);

ok($sdk->wait_connections(1, 5), 'q1 is dialed');
sleep_loop(1);

sub takes {
    my $n = 0;
    for my $t (@I) {
        my $log = $t->read_error_log;
        my $from = $t->{amon_mark} // 0;
        $n += () = substr($log, $from) =~ /holds the connection to target "q1"/g;
    }
    return $n;
}

# the log's length now: lines after it are this test's
$_->{amon_mark} = length($_->read_error_log) for @I;

sub lease_tries {
    my ($calls) = ($redis->cli('INFO', 'commandstats') // '')
        =~ /cmdstat_set:calls=(\d+)/;
    return $calls // 0;
}

my $tries = lease_tries();
$sdk->stop;
sleep_loop(8);
$tries = lease_tries() - $tries;
ok($tries >= 8, "the workers tried to take q1's lease $tries times in 8 s "
    . 'while it was away');
my $n = takes();
ok($n <= 4, "said $n times by the 4 workers (at most once each)");

$sdk->start;
ok($sdk->wait_connections(1, 5), 'q1 back: dialed again');
ok(wait_for(sub {
        grep { $_->read_error_log =~ /connected to the SDK again/ } @I
    }, 3), 'the worker that reached it says so');

done_testing();
