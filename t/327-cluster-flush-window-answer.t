# amonitor_cluster right after Redis lost its data (FLUSHALL), before the
# target's owner has renewed its lease: the other workers leave the lease
# alone (the loss is marked for lease*3/4), and an action sent through
# one of them waits for the owner for half its ack timeout, then is
# answered TARGET_UNAVAILABLE, released, saying so.  Once the owner
# renews, the retry runs, on the SDK connection it always had.  (An
# action the owner's renewal comes in time for: t/328.)
# The FLUSHALL comes right after a renewal, with a lease of 12 s: the
# owner's next renewal is 4 s away.  Starts its own redis-server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Mojo::JSON qw(encode_json);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);

my $sdk = fake_sdk(target_id => 'fa-1', heartbeat_interval => 0);

sub agent {
    my ($name, $port) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$port prefix=fa: timeout=500ms;
    amonitor_cluster on lease=12s;
    amonitor_instance_id $name;
    amonitor_target fa-1 ${\ $sdk->url };
    amonitor_ack_timeout 3s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

# A first: it takes the lease
my $A = agent('A', $redis->port);
ok(wait_for(sub { $redis->cli('GET', 'fa:lease:fa-1') =~ /^A:/ }, 5),
    'A holds the lease');
ok(wait_for(sub { $sdk->connections == 1 }, 5), 'and the SDK connection');
my $B = agent('B', $redis->port);
sleep_loop(1);

is($redis->cli('PUBSUB', 'NUMSUB', 'fa:owners'), "fa:owners\n1",
    'the owner is counted on the owners channel');
is($redis->cli('GET', 'fa:state'), '1', 'the state key is there');

# the subscriber connections lost: the owner subscribes again
$redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
ok(wait_for(sub { $redis->cli('PUBSUB', 'NUMSUB', 'fa:owners') eq
    "fa:owners\n1" }, 5), 'the owner is counted again after a reconnect');
ok(wait_for(sub { $redis->cli('PUBSUB', 'NUMSUB', 'fa:rt') eq
    "fa:rt\n2" }, 5), 'both workers are subscribed to the routes again');

# right after A renews (the lease's PTTL goes up again)
my $last = $redis->cli('PTTL', 'fa:lease:fa-1');
ok(wait_for(sub {
    my $t = $redis->cli('PTTL', 'fa:lease:fa-1');
    my $renewed = $t > $last + 1000;
    $last = $t;
    return $renewed;
}, 6), 'the owner renews');
is($redis->cli('FLUSHALL'), 'OK', 'FLUSHALL');

my $p = $B->panel('/ws/panel');
my $id = uuid4();
my $sent = now_ms();
$p->send_json({ msg_id => $id, type => 'action', target_id => 'fa-1',
    timestamp => now_ms(), payload => { action => 'restart' } });
my $a = $p->answer_to($id, 5);
my $waited = now_ms() - $sent;
ok($a && $a->{type} eq 'error'
    && $a->{payload}{code} eq 'TARGET_UNAVAILABLE'
    && $a->{payload}{message} =~ /lost its data a moment ago/,
    'an action through B: TARGET_UNAVAILABLE, Redis lost its data')
    or diag(encode_json($a // {}));
# held for the owner until half the ack timeout (1.5 s) was gone, not
# until the ack timeout
cmp_ok($waited, '>=', 1300, 'the answer came after the action waited');
cmp_ok($waited, '<', 2800, '... for about half its ack timeout');
is($sdk->executed($id), 0, 'not run');
is($redis->cli('EXISTS', 'fa:lost'), '1', 'the loss is marked');
is($redis->cli('GET', 'fa:lease:fa-1'), '', 'nobody took the lease');

ok(wait_for(sub { $redis->cli('GET', 'fa:lease:fa-1') =~ /^A:/ }, 6),
    'the owner renews: A holds the lease again');
ok(wait_for(sub { $redis->cli('EXISTS', 'fa:lost') eq '0' }, 10),
    'the mark goes');

$p->send_json({ msg_id => $id, type => 'action', target_id => 'fa-1',
    timestamp => now_ms(), payload => { action => 'restart' } });
$a = $p->answer_to($id, 5);
ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
    'the retry (same msg_id) is acked') or diag(encode_json($a // {}));
is($sdk->executed($id), 1, 'it ran once');
is($sdk->accepted, 1, 'the SDK was dialed once');
is($A->log_count(qr/lost the lease/), 0, 'A did not lose its lease');
$p->close(1000);

# a first start on an empty Redis takes its lease at once: no mark
$A->stop;
$B->stop;
is($redis->cli('FLUSHALL'), 'OK', 'FLUSHALL with no instance running');
# a key of the mark's name that lives longer than a mark is not one (an
# earlier build keeps the claim of msg_id "lost" there)
$redis->cli('SET', 'fa:lost', 'other', 'PX', '60000');
my $sdk2 = fake_sdk(target_id => 'fa-1', heartbeat_interval => 0);
$sdk = $sdk2;
my $t0 = now_ms();
my $C = agent('C', $redis->port);
ok(wait_for(sub { $sdk2->connections == 1 }, 5),
    'a new instance dials the SDK');
cmp_ok(now_ms() - $t0, '<', 6000, 'within half a lease of its start');
is($redis->cli('GET', 'fa:lost'), 'other', 'no loss is marked');

done_testing;
