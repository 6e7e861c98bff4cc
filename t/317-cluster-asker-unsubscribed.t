# amonitor_cluster: a worker sends an action to the owner of a target on
# another instance only while its own subscription to the bus is up, as
# the ack comes back on it.  With its subscriber connection cut (its
# command connection still up), the action used to be run by the SDK and
# acked, and the panel got ACK_TIMEOUT for it (and action_status said
# "failed").  It now gets TARGET_UNAVAILABLE at once, the claim released,
# and a retry once the subscription is back runs it.  An action already
# under way when the subscription goes still ends with ACK_TIMEOUT for
# the panel (its ack cannot reach the asking worker), but the owner,
# which holds the claim too, recorded the ack: a retry says "done"; and
# the asking worker's renewals that find it ended say nothing (they said
# "the action may run twice").

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

my $sdk = fake_sdk(target_id => 'u1', heartbeat_interval => 0,
    ack_delay => 0.05);
my $sport = $sdk->port;

sub agent {
    my ($name, $reconnect) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-u: timeout=300ms lease=900ms;
    amonitor_cluster on lease=1500ms;
    amonitor_instance_id $name;
    amonitor_target u1 ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 2s;
    amonitor_ack_late_window 0;
    amonitor_reconnect $reconnect;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    $t->ignore_log(qr/redis|bus/);
    return $t;
}

# B holds u1; A asks, and comes back to Redis slowly once cut
my $B = agent('B', '50ms 300ms');
ok($sdk->wait_connections(1, 5), 'B dials u1');
ok(wait_for(sub { $redis->cli('GET', 'amon-u:lease:u1') =~ /^B:/ }, 5),
    'B holds its lease');
my $A = agent('A', '2s 2s');
sleep_loop(1);

my $p = $A->panel('/ws/panel');
sub act {
    my ($id) = @_;
    $p->send_json({ msg_id => $id, type => 'action', target_id => 'u1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    return $p->answer_to($id, 5);
}

my $first = act(uuid4());
ok($first && $first->{type} eq 'action_ack', 'an action from A is acked');

# A's subscriber connection cut; its command connection stays
my @ids = map { /\bid=(\d+)/ ? $1 : () } grep { /cmd=(?:p?subscribe)/ }
    split /\n/, $redis->cli('CLIENT', 'LIST');
ok(@ids >= 2, 'the subscribers of both instances are listed');
$redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
sleep_loop(0.3);

my $id = uuid4();
my $a = act($id);
ok($a && $a->{type} eq 'error', 'while unsubscribed: an error at once');
is($a && $a->{payload}{code}, 'TARGET_UNAVAILABLE', 'TARGET_UNAVAILABLE');
like($a && $a->{payload}{message}, qr/cluster bus/, 'that names the bus');
is($sdk->executed($id), 0, 'the SDK did not run it');

# back: the retry runs
my $again;
ok(wait_for(sub {
        $again = act($id);
        $again && $again->{type} eq 'action_ack';
    }, 10), 'once subscribed again, the retry is acked');
is($sdk->executed($id), 1, 'and ran once');

# An action under way when the subscription goes: its ack, published by
# B while A is not subscribed, never reaches A, whose panel gets
# ACK_TIMEOUT.  B holds the claim too and recorded the ack, so what is
# kept is the ack ("done"), not A's timeout; before, it was "failed".
$sdk->set(ack_delay => 0.3);
# (A is subscribed again: the retry above was acked through it)
$A->mark_log;
my $late = uuid4();
$p->send_json({ msg_id => $late, type => 'action', target_id => 'u1',
    timestamp => now_ms(), payload => { action => 'restart' } });
ok(wait_for(sub { $sdk->executed($late) == 1 }, 3), 'the SDK has it');
$redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
my $lost = $p->answer_to($late, 5);
is($lost && $lost->{payload}{code}, 'ACK_TIMEOUT',
    'the ack did not reach A: ACK_TIMEOUT');
my $kept = $redis->cli('GET', "amon-u:$late") // '';
like($kept, qr/^d/, 'the record is the ack, written by B')
    or diag("kept: $kept");
ok($A->wait_error_log(qr/was ended already \("d" found\)/, 3),
    "A's own end found it and says so");
$A->no_error_log(qr/may run twice|may have run twice/);
my $dup;
ok(wait_for(sub {
        $dup = act($late);
        $dup && $dup->{payload}{duplicate};
    }, 10), 'a retry once subscribed again is a duplicate');
is($dup && $dup->{payload}{state}, 'done', 'with state done');
is($sdk->executed($late), 1, 'the SDK ran it once');

$_->stop for $A, $B;
$sdk->stop;
$redis->stop;
done_testing;
