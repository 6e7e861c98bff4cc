# amonitor_cluster while Redis is down, and after it comes back empty:
# actions are answered INTERNAL at once (the dedupe check is never
# skipped), the owner keeps its one connection to the SDK and its own
# panels keep getting the heartbeats; once Redis is back every instance
# recovers without a reload: leases, routes, events and actions across
# instances work again, still with one SDK connection.  Also: the
# directive's configuration errors.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Mojo::JSON qw(encode_json);
use Time::HiRes qw(time);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

subtest 'configuration errors' => sub {
    my $t = Test::AMonitor->new;
    my ($st, $out) = $t->nginx_t(http_config => "    amonitor_zone z 1m;\n"
        . "    amonitor_cluster on;\n");
    like($out, qr/"amonitor_cluster" requires "amonitor_redis"/,
        'amonitor_cluster needs amonitor_redis');
    ($st, $out) = $t->nginx_t(http_config => "    amonitor_zone z 1m;\n"
        . "    amonitor_redis 127.0.0.1:1;\n"
        . "    amonitor_cluster on lease=100ms;\n");
    like($out, qr/invalid cluster lease "lease=100ms"/,
        'a lease under 500 ms is refused');
    ($st, $out) = $t->nginx_t(http_config => "    amonitor_zone z 1m;\n"
        . "    amonitor_redis 127.0.0.1:1;\n"
        . "    amonitor_cluster maybe;\n");
    like($out, qr/invalid value "maybe" in "amonitor_cluster"/,
        'on or off');
    ($st, $out) = $t->nginx_t(http_config => "    amonitor_zone z 1m;\n"
        . "    amonitor_redis 127.0.0.1:1;\n"
        . "    amonitor_cluster on route_ttl=1h;\n"
        . "    amonitor_instance_id a-1;\n");
    is($st, 0, 'a valid one passes') or diag($out);
};

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $sdk = fake_sdk(target_id => 'd1', heartbeat_interval => 0);
my $sport = $sdk->port;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 2, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-d: timeout=300ms;
    amonitor_cluster on lease=1500ms;
    amonitor_instance_id $name;
    amonitor_target d1 ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 2s;
    amonitor_ack_late_window 0;
    amonitor_reconnect 50ms 500ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

my %I = map { $_ => agent($_) } qw(A B);
ok($sdk->wait_connections(1, 5), 'd1 is dialed');
sleep_loop(1);

my $owner = ($redis->cli('GET', 'amon-d:lease:d1') =~ /^([AB]):/)[0] // '';
ok($owner, "instance $owner holds d1");

my %panels = map { my $n = $_; ($n => [ map { $I{$n}->panel('/ws/panel',
    name => "$n$_") } 1 .. 4 ]) } qw(A B);
my @all = map { @{ $panels{$_} } } qw(A B);
sleep_loop(0.5);


# the worker of instance $t holding the TCP connection whose far end is
# 127.0.0.1:$port (a panel's local port, or the SDK's listening port)
sub worker_of {
    my ($t, $port) = @_;
    my %inode;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open(my $fh, '<', $f) or next;
        while (my $line = <$fh>) {
            my @c = split ' ', $line;
            next unless @c > 9 && $c[2] =~ /:([0-9A-F]{4})$/;
            $inode{ $c[9] } = 1 if hex($1) == $port && $c[9];
        }
    }
    for my $pid ($t->worker_pids) {
        opendir(my $dh, "/proc/$pid/fd") or next;
        for my $fd (readdir $dh) {
            my $l = readlink("/proc/$pid/fd/$fd") // next;
            return $pid if $l =~ /^socket:\[(\d+)\]$/ && $inode{$1};
        }
    }
    return 0;
}

sub panel_port {
    my ($p) = @_;
    return Mojo::IOLoop->stream($p->tx->connection)->handle->sockport;
}

sub hb_seqs {
    my ($p) = @_;
    my %n;
    for my $m ($p->messages) {
        my $j = $m->{json};
        next unless ref $j eq 'HASH' && ($j->{type} // '') eq 'heartbeat';
        $n{ $j->{payload}{metrics}{seq} }++;
    }
    return \%n;
}

sub ask {
    my ($p, $id) = @_;
    $id //= uuid4();
    $p->send_json({ msg_id => $id, type => 'action', target_id => 'd1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        return 0 unless ref $j eq 'HASH';
        return 1 if ($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id;
        return ($j->{type} // '') eq 'action_ack'
            && ($j->{payload}{action_msg_id} // '') eq $id;
    }, 5);
    return ($m ? $m->{json} : undef, $id);
}

subtest 'redis down' => sub {
    $_->ignore_log(qr/redis/) for values %I;
    $redis->stop;
    ok(wait_for(sub { $I{A}->log_count(qr/lost the connection to redis/) }, 3),
        'the loss is logged');
    sleep_loop(0.5);

    for my $n (qw(A B)) {
        my $t0 = time;
        my ($a, $id) = ask($panels{$n}[0]);
        my $ms = int((time - $t0) * 1000);
        is($a && $a->{payload}{code}, 'INTERNAL', "$n: an action is refused")
            or diag(encode_json($a // {}));
        ok($ms < 500, "$n: at once ($ms ms)");
        is($sdk->executed($id), 0, "$n: nothing ran");
    }

    # the panels on the worker that holds the SDK connection: without
    # Redis only they can hear it (more are opened if none landed there)
    my $ow = worker_of($I{$owner}, $sport);
    ok($ow, "the worker of $owner holding d1 is found");
    my @local = grep { worker_of($I{$owner}, panel_port($_)) == $ow }
        @{ $panels{$owner} };
    for my $k (1 .. 16) {
        last if @local;
        my $p = $I{$owner}->panel('/ws/panel', name => "$owner+$k");
        push @{ $panels{$owner} }, $p;
        push @all, $p;
        push @local, $p if worker_of($I{$owner}, panel_port($p)) == $ow;
    }
    ok(scalar(@local), 'a panel of the owner\'s worker is connected');

    my $first = $sdk->{seq} + 1;
    $sdk->heartbeat for 1 .. 10;
    my @want = ($first .. $sdk->{seq});
    ok(wait_for(sub { !grep { my $s = hb_seqs($_);
        grep { !$s->{$_} } @want } @local }, 3),
        'the owner\'s own panels still get every heartbeat');
    sleep_loop(0.3);
    my @twice = map { my $s = hb_seqs($_);
        grep { ($s->{$_} // 0) > 1 } @want } @all;
    is("@twice", '', 'none twice');
    is($sdk->connections, 1, 'the owner keeps its one SDK connection');
    like($I{$owner}->http_get('/ws/panel')->{code} // 0, qr/^4\d\d$/,
        'the instance answers HTTP (a plain GET of the panel is refused)');
};

subtest 'redis back, empty: everything recovers without a reload' => sub {
    my $accepted = $sdk->accepted;
    ok($redis->start, 'redis-server is back (empty)');
    ok(wait_for(sub { $redis->cli('EXISTS', 'amon-d:lease:d1') eq '1' }, 5),
        'the lease is back in redis');
    ok(wait_for(sub { $redis->cli('HEXISTS', 'amon-d:routes', 'd1') eq '1' },
        5), 'and the route');
    # each worker subscribes to the events again once its connection is
    # back (after up to amonitor_reconnect's max): the panels of the
    # workers that are not the owner hear the heartbeats from then on
    ok(wait_for(sub { (($redis->cli('PUBSUB', 'NUMSUB', 'amon-d:ev')
        =~ /(\d+)\z/)[0] // 0) == 4 }, 5),
        'the four workers subscribed again');
    sleep_loop(2);
    is($sdk->connections, 1, 'one SDK connection');
    is($sdk->accepted, $accepted, 'the owner kept it');

    my $first = $sdk->{seq} + 1;
    $sdk->heartbeat for 1 .. 10;
    my @want = ($first .. $sdk->{seq});
    ok(wait_for(sub { !grep { my $s = hb_seqs($_);
        grep { !$s->{$_} } @want } @all }, 5),
        'every panel of both instances gets every heartbeat again');

    for my $p (@all) {
        my ($a, $id) = ask($p);
        ok($a && $a->{type} eq 'action_ack', $p->name . ': acked')
            or diag(encode_json($a // {}));
        is($sdk->executed($id), 1, $p->name . ': ran once');
    }
};

done_testing();
