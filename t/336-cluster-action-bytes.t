# amonitor_cluster: the frames of a panel's actions that another instance
# runs count against the panel's amonitor_connection_buffer_limit until
# the actions end.  Handed over the bus, a frame leaves the asking worker
# at once, but the owner may hold it while its connection to the SDK is
# made; counted only until the hand-over, a panel could have the owners
# hold amonitor_send_queue actions of amonitor_max_message_size each.

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

# acks come after 3 s: the actions stay in flight meanwhile
my $sdk = fake_sdk(target_id => 'cb1', heartbeat_interval => 0,
    ack_delay => 3);
my $sport = $sdk->port;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1);
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-cb: timeout=500ms;
    amonitor_cluster on lease=1500ms;
    amonitor_instance_id $name;
    amonitor_target cb1 ws://127.0.0.1:$sport/;
    amonitor_max_message_size 256k;
    amonitor_connection_buffer_limit 1m;
    amonitor_ack_timeout 5s;
EOC
        config => 'location = /ws/panel { amonitor_panel on; '
            . 'amonitor_panel_snapshot off; }')->run;
    return $t;
}

# A first: it takes the target's lease and dials it
my $A = agent('A');
ok($sdk->wait_connections(1, tscale(5)), 'A dialed the SDK');
ok(wait_for(sub { ($redis->cli('GET', 'amon-cb:lease:cb1') // '')
    =~ /^A:/ }, tscale(5)), 'A holds the lease');
my $B = agent('B');
sleep_loop(0.5);
is($sdk->accepted, 1, 'B did not dial it: it hands its actions to A');

my $panel = $B->panel('/ws/panel');
my $PAD = 'p' x (200 * 1024);
sub big_action {
    my $id = uuid4();
    $panel->send_json({ msg_id => $id, type => 'action', target_id => 'cb1',
        timestamp => now_ms(), payload => { action => 'restart',
        pad => $PAD } });
    return $id;
}
sub code_of {
    my ($id) = @_;
    my ($a) = $panel->answers_to($id);
    return '' unless $a;
    return $a->{type} eq 'action_ack' ? 'ack' : $a->{payload}{code} // '?';
}

# one every 100 ms: each is handed to A before the next comes, and all
# are sent before the first ack
my @ids = map { my $id = big_action(); sleep_loop(0.1); $id } 1 .. 20;
ok(wait_for(sub { !grep { code_of($_) eq '' } @ids }, tscale(10)),
    'every action is answered');
my @acked = grep { code_of($_) eq 'ack' } @ids;
my @limited = grep { code_of($_) eq 'RATE_LIMITED' } @ids;
note(sprintf('%d acked, %d RATE_LIMITED of 20', scalar @acked,
    scalar @limited));
cmp_ok(scalar @acked, '>=', 2, 'those within the limit ran on A');
cmp_ok(scalar @acked, '<=', 5, 'no more than 1m of them at a time');
is(@acked + @limited, 20, 'the others were refused RATE_LIMITED');
is(scalar(grep { $sdk->executed($_) } @acked), scalar @acked,
    'the SDK ran each acked one');
is(scalar(grep { $sdk->executed($_) } @limited), 0, 'and no refused one');

# once acked, their bytes are given back: one at a time they all run
my $ok = 0;
for (1 .. 3) {
    my $id = big_action();
    $ok++ if wait_for(sub { code_of($id) eq 'ack' }, tscale(8));
}
is($ok, 3, 'then 3 more, one after the other, are acked');

$panel->close(1000);
$B->stop;
$A->stop;

done_testing;
