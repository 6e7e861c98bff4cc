# amonitor_cluster right after Redis lost its data (FLUSHALL): an action
# sent through a worker that does not own the target waits for the
# owner's next renewal (the asking worker sends it again while the loss is
# marked) and runs then, once, on the SDK connection the owner always had:
# the panel gets the SDK's ack, not an error to retry.  Many actions at
# once, from several panels, a panel that leaves while its action waits,
# and a msg_id sent again while the first one waits.  Starts its own
# redis-server.

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

my $sdk = fake_sdk(target_id => 'fh-1', heartbeat_interval => 0);

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis ${\ $redis->addr } prefix=fh: timeout=500ms;
    amonitor_cluster on lease=3s;
    amonitor_instance_id $name;
    amonitor_target fh-1 ${\ $sdk->url };
    amonitor_ack_timeout 10s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

my $A = agent('A');
ok(wait_for(sub { $redis->cli('GET', 'fh:lease:fh-1') =~ /^A:/ }, 5),
    'A holds the lease');
ok(wait_for(sub { $sdk->connections == 1 }, 5), 'and the SDK connection');
my $B = agent('B');
ok(wait_for(sub { $redis->cli('PUBSUB', 'NUMSUB', 'fh:rt') eq "fh:rt\n2" },
    5), 'both instances are subscribed');

sub action {
    my ($p, $id) = @_;
    $p->send_json({ msg_id => $id, type => 'action', target_id => 'fh-1',
        timestamp => now_ms(), payload => { action => 'restart' } });
}

# right after A renews (every second): its next renewal is a second away
sub after_renewal {
    my $last = $redis->cli('PTTL', 'fh:lease:fh-1');
    return wait_for(sub {
        my $t = $redis->cli('PTTL', 'fh:lease:fh-1');
        my $renewed = $t > $last + 300;
        $last = $t;
        return $renewed;
    }, 3);
}

# --- one action ---------------------------------------------------------

my $p = $B->panel('/ws/panel');
ok(after_renewal(), 'the owner renews');
is($redis->cli('FLUSHALL'), 'OK', 'FLUSHALL');
my $id = uuid4();
my $sent = now_ms();
action($p, $id);
my $a = $p->answer_to($id, 8);
my $took = now_ms() - $sent;
ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
    'an action through B right after the loss is acked')
    or diag(encode_json($a // {}));
is($sdk->executed($id), 1, '... it ran once');
cmp_ok($took, '>=', 150, '... after it waited for the owner\'s renewal');
is($redis->cli('GET', 'fh:lease:fh-1') =~ /^A:/ ? 1 : 0, 1,
    'A holds the lease again');

# --- many actions, several panels, one that leaves ----------------------

my @p = map { $B->panel('/ws/panel') } 1 .. 3;
my $gone = $B->panel('/ws/panel');
ok(after_renewal(), 'the owner renews');
is($redis->cli('FLUSHALL'), 'OK', 'FLUSHALL again');

my (%ids, @all);
for my $i (0 .. 29) {
    my $pid = uuid4();
    action($p[$i % 3], $pid);
    $ids{$pid} = $i % 3;
    push @all, $pid;
}
my $left = uuid4();
action($gone, $left);
$gone->close(1000);

# the same msg_id again at once, while the first waits: not run twice
action($p[0], $all[0]);

my $acked = grep { $p[$ids{$_}]->success_ack($_, 8) } @all;
is($acked, 30, 'each of 30 actions through B is acked');
is((grep { $sdk->executed($_) == 1 } @all), 30, '... each ran once');
my @dup = grep { ($_->{payload}{message} // '') =~ /duplicate ignored/ }
    $p[0]->answers_to($all[0]);
is(scalar @dup, 1,
    'the msg_id sent again while it waited: "duplicate ignored"')
    or diag(encode_json([ $p[0]->answers_to($all[0]) ]));
ok(wait_for(sub { $sdk->executed($left) == 1 }, 8),
    'the action of the panel that left runs too, once');
is($sdk->executed($all[0]), 1, 'the msg_id sent twice ran once');

# --- the lease stayed ---------------------------------------------------

is($sdk->accepted, 1, 'the SDK was dialed once');
is($A->log_count(qr/lost the lease/), 0, 'A did not lose its lease');
is($B->log_count(qr/\[(?:alert|crit|emerg)\]/), 0, 'no alert in B\'s log');
$_->close(1000) for $p, @p;

done_testing;
