# amonitor_cluster: an action waiting on one instance for the ack that
# another instance's connection will bring back, when its target is
# forgotten on the asking instance meanwhile (an SDK registers the id at
# another URL, which displaces the dialed target): its ack timeout ends
# it with ACK_TIMEOUT, and the worker lives on.  Before, the timeout read
# the name of the forgotten target through a NULL pointer (SIGSEGV).

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

my $reg = fake_sdk(target_id => 'reg', heartbeat_interval => 0);
my $preg = $reg->port;

sub agent {
    my ($name, $targets) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-f: timeout=500ms;
    amonitor_cluster on lease=6s;
    amonitor_instance_id $name;
$targets
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 4s;
    amonitor_ack_late_window 0;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

# B first: it holds reg
my $B = agent('B', "    amonitor_target reg ws://127.0.0.1:$preg/;");
ok($reg->wait_connections(1, 5), 'B dialed reg');
my $A = agent('A', '');

# A dials a target for a panel of its own (that first action waits for
# the lease, then for the connection); B learns the route.  Who holds
# the lease is a race: try new targets until A holds one.
my $pa = $A->panel('/ws/panel', name => 'a');
my ($dx, $id, $pdx);
for my $k (1 .. 24) {
    my $sdk = fake_sdk(target_id => "dx$k", heartbeat_interval => 0,
        no_ack => 1);
    $pa->send_json({ msg_id => "f-$k", type => 'action',
        target_id => "dx$k", payload => { action => 'restart',
            target_url => 'ws://127.0.0.1:' . $sdk->port . '/' } });
    my $holder;
    wait_for(sub { $holder = $redis->cli('GET', "amon-f:lease:dx$k");
        defined $holder && length $holder }, 5);
    next unless ($holder // '') =~ /^A:/;
    ($dx, $id, $pdx) = ($sdk, "dx$k", $sdk->port);
    last;
}
ok($dx, 'A holds a dialed target') or BAIL_OUT('A never won a lease');
ok($dx->wait_connections(1, 5), "A dialed $id");
ok($B->wait_error_log(qr/learned target "$id" at ws:\/\/127\.0\.0\.1:$pdx\/ from the cluster \(dial\)/, 5),
    "B learned the route of $id");

# a panel of B acts on it: B hands the action to A and waits for its ack
my $pb = $B->panel('/ws/panel', name => 'b');
$pb->send_json({ msg_id => 'f-b', type => 'action', target_id => $id,
    payload => { action => 'restart' } });
ok(wait_for(sub { $dx->executed('f-b') }, 5), "the action of B reached $id through A");

# the SDK behind reg registers that id at its own URL: B, which holds
# reg, forgets the dialed target while its action waits
$reg->send_all({ msg_id => 'r-1', type => 'register', target_id => $id,
    payload => { target_id => $id, sdk_url => "ws://127.0.0.1:$preg/" } });
ok($B->wait_error_log(qr/learned target "$id" at ws:\/\/127\.0\.0\.1:$pdx\/ forgotten: displaced by a register/, 5),
    "B forgot the dialed $id");

my $m = $pb->recv_until(sub { ($_[0]{json}{msg_id} // '') eq 'f-b' }, 8);
ok($m, 'the panel of B got an answer for its action');
is($m && $m->{json}{payload}{code}, 'ACK_TIMEOUT', 'ACK_TIMEOUT');
ok($m && $m->{json}{payload}{final}, 'final');
$B->error_log_like(qr/\[error\].*amonitor: no ack for action "f-b" from target "$id" within 4000 ms/,
    'the line names the target');
$B->no_error_log(qr/exited on signal/, 'B\'s worker did not crash');

$_->close(1000) for $pa, $pb;

done_testing();
