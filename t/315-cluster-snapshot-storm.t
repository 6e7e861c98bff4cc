# A reconnect storm in a cluster: 100 panels finish their handshakes at
# once on instance B, whose worker serves 1,001 targets.  The one that
# is up is held by instance A (B knows it as up through the cluster) and
# sent a heartbeat before the storm.  Every storm panel's snapshot is the
# same, told from B's records: 1,001 target_status, the live target up
# with A's URL for it, followed by its last heartbeat; an open panel on B
# is answered meanwhile, and gets the heartbeats sent during the storm.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::Util qw(tscale);
use IO::Socket::INET;
use Time::HiRes qw(time);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my ($N, $STORM) = (1000, 100);
my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $live = fake_sdk(target_id => 'live', heartbeat_interval => 0);
my $lport = $live->port;
my $dead = free_port();

# every other target dials a port nobody listens on
my $targets = join '', map {
    sprintf("    amonitor_target cs-%05d ws://127.0.0.1:%d/%d;\n", $_, $dead,
        $_)
} 1 .. $N;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info',
        panel_snapshot => 1);
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 16m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-s: timeout=500ms;
    amonitor_cluster on lease=1500ms;
    amonitor_instance_id $name;
    amonitor_target live ws://127.0.0.1:$lport/;
$targets
    amonitor_reconnect 30s 60s;
    amonitor_ping 0;
    amonitor_send_queue 4096;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

# A first, so that A holds the live target
my $A = agent('A');
ok($live->wait_connections(1, 10), 'the live target is dialed');
my $B = agent('B');
ok($B->wait_error_log(qr/amonitor/, 1) || 1, 'B runs');

my $quiet = $B->panel('/ws/panel?targets=live', name => 'quiet');
ok($quiet->recv_type('target_status', target_id => 'live', state => 'up',
    timeout => tscale(10)), 'B knows the live target is up (held by A)')
    or diag(explain([map { $_->{text} } $quiet->messages]));
is($live->connections, 1, 'one agent connection to the live target');

$live->heartbeat;
my $hb = $quiet->recv_type('heartbeat', target_id => 'live',
    timeout => tscale(5));
ok($hb, 'B forwards the live heartbeat');
my $hb_id = $hb && $hb->{json}{msg_id};

# B's records of the targets A holds come with the cluster's messages:
# the storm starts once a new panel is told all of them
my $told = 0;
ok(wait_for(sub {
    my $p = $B->panel('/ws/panel', name => 'count');
    $p->ping(undef, tscale(5));
    $told = grep {
        my $j = $_->{json};
        ref $j eq 'HASH' && ($j->{type} // '') eq 'target_status'
    } $p->messages;
    $p->close;
    return $told == $N + 1;
}, tscale(30)), "a new panel on B is told every target ($told)");

my @s;
for my $i (1 .. $STORM) {
    push @s, IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $B->port(0), Proto => 'tcp') or die "connect: $!";
}
Time::HiRes::sleep(0.5);

my $port = $B->port(0);
for my $c (@s) {
    syswrite($c, "GET /ws/panel HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        . "Sec-WebSocket-Version: 13\r\n\r\n");
}

# heartbeats while the storm is opened; the open panel gets them all
for (1 .. 3) {
    ok($quiet->ping(undef, tscale(10)), 'the open panel is answered');
    $live->heartbeat;
}
my $n = 0;
ok(wait_for(sub {
    $n = grep {
        my $j = $_->{json};
        ref $j eq 'HASH' && ($j->{type} // '') eq 'heartbeat'
    } $quiet->messages;
    $n >= 4
}, tscale(10)), "the open panel got the heartbeats of the storm ($n)");

# every storm panel: the 101, then a snapshot of B's 1,001 records
my ($whole, $up, @odd) = (0, 0);
for my $c (@s) {
    my $data = '';
    my $until = time + tscale(5);
    $c->blocking(0);
    while (time < $until) {
        my $got = sysread($c, my $buf, 1 << 20);
        $data .= $buf if $got;
        my $k = () = $data =~ /"type":"target_status"/g;
        last if $k >= $N + 1 && $data =~ /"type":"heartbeat"/;
        Time::HiRes::sleep(0.01) unless $got;
    }
    my $k = () = $data =~ /"type":"target_status"/g;
    $whole++ if $data =~ m{^HTTP/1\.1 101 } && $k == $N + 1;
    push @odd, $k if $k != $N + 1;
    $up++ if $data =~ /"target_id":"live","state":"up","url":"ws:\/\/127\.0\.0\.1:$lport\/"/
        && $data =~ /"type":"heartbeat"/;
}
is($whole, $STORM, 'every storm panel got the 101 and 1,001 target_status')
    or diag("target_status counts: @odd");
is($up, $STORM, 'each was told the live target up, with its heartbeat');

close $_ for @s;
ok($quiet->ping(undef, tscale(5)), 'the open panel is still answered');
is($live->connections, 1, 'still one agent connection to the live target');

for my $t ($A, $B) {
    $t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
    $t->ignore_log(qr/\[warn\].*(?:slow panel|dropped|send queue)/);
}
$B->stop;
$A->stop;
$live->stop;
$redis->stop;
done_testing;
