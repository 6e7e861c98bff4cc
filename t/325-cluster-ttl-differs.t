# amonitor_cluster with Redis as the dedupe store, instances whose
# amonitor_dedupe_ttl differ (A and C: 1h, B: 1s).  A panel on A acts on k1,
# which B's worker holds: both workers hold the claim while k1 runs the
# action, and both renew it.  A claim is kept for a lease plus the TTL it
# names (its asker's, 1h), and one with less than that left is lost.  B
# used to renew it to its own lease plus TTL (about 9 s here), so while
# k1 still ran the action, repeats and action_status through C said
# "failed" (TARGET_DISCONNECTED) now and then.  Now each renewal keeps the TTL the
# claim names: every repeat says "pending", and the end is "done".

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

my $sdk = fake_sdk(target_id => 'k1', heartbeat_interval => 0,
    ack_delay => 4);
my $sport = $sdk->port;

sub agent {
    my ($name, $ttl) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-t: timeout=300ms
                   lease=1s;
    amonitor_cluster on lease=1s;
    amonitor_instance_id $name;
    amonitor_target k1 ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 8s;
    amonitor_ack_late_window 0;
    amonitor_dedupe_ttl $ttl;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

# B first, so that B holds k1's lease
my $B = agent('B', '1s');
ok($sdk->wait_connections(1, 5), 'k1 is dialed');
ok(wait_for(sub { ($redis->cli('GET', 'amon-t:lease:k1') // '') =~ /^B:/ },
    5), 'B holds k1');
my $A = agent('A', '1h');
my $C = agent('C', '1h');
ok($A->wait_error_log(qr/cluster bus subscribed/, 5), 'A is on the bus');
ok($C->wait_error_log(qr/cluster bus subscribed/, 5), 'C is on the bus');

my $id = uuid4();
my $p = $A->panel('/ws/panel');
$p->send_json({ msg_id => $id, type => 'action', target_id => 'k1',
    timestamp => now_ms(), payload => { action => 'restart' } });
ok(wait_for(sub { $sdk->executed($id) == 1 }, 5),
    'k1 runs the action asked on A');
like($redis->cli('GET', "amon-t:$id") // '', qr/\|k1;h3600000$/,
    "the claim names A's TTL");

# asked through C, which knows nothing of the action but what Redis holds
my (%states, @ttl);
my $q = $C->panel('/ws/panel');
for my $i (1 .. 10) {
    sleep_loop(0.27);
    push @ttl, $redis->cli('PTTL', "amon-t:$id");
    my $r = "r$i-$id";
    $q->send_json({ msg_id => $r, type => 'action_status',
        payload => { action_msg_id => $id } });
    my $m = $q->recv_until(sub { ($_[0]{json}{msg_id} // '') eq $r }, 5);
    $states{ $m ? $m->{json}{payload}{state} // '?' : 'none' }++;
    $q->send_json({ msg_id => $id, type => 'action', target_id => 'k1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    my $a = $q->answer_to($id, 5);
    $states{ 'repeat ' . ($a ? $a->{payload}{state} // '?' : 'none') }++;
}
is_deeply(\%states, { pending => 10, 'repeat pending' => 10 },
    'while k1 runs it, every action_status and repeat says pending');
my @short = grep { $_ < 3600 * 1000 } @ttl;
is("@short", '', 'the claim always has more than the TTL it names left');

my $a = $p->answer_to($id, 8);
ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
    'the ack reaches the panel on A');
like($redis->cli('GET', "amon-t:$id") // '', qr/^d/, 'the record is done');
is($sdk->executed($id), 1, 'k1 ran it once');

done_testing;
