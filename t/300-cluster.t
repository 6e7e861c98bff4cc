# amonitor_cluster: three instances of two workers each, one Redis (the
# test's own).  Each SDK sees exactly one agent connection in the whole
# cluster; every panel of every instance gets every heartbeat of every
# target exactly once; actions from panels on all three instances are
# acked to the panel that asked and run once; a target registered through
# instance A is acted on through C; a target configured on A only is
# known to B and C through the shared routes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Mojo::JSON qw(encode_json);
use IO::Socket::INET;

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $s1 = fake_sdk(target_id => 'c1', heartbeat_interval => 0);
my $hub = fake_sdk(target_id => 'hub', heartbeat_interval => 0);
my $reg = fake_sdk(target_id => 'reg', heartbeat_interval => 0);
my ($p1, $ph) = ($s1->port, $hub->port);

sub agent {
    my ($name, $targets) = @_;
    my $t = Test::AMonitor->new(workers => 2, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-c: timeout=500ms;
    amonitor_cluster on lease=1500ms;
    amonitor_instance_id $name;
$targets
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 2s;
    amonitor_ack_late_window 0;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }'
            . ' location = /metrics { amonitor_metrics; }'
            . ' location = /ws/snap { amonitor_panel on;'
            . ' amonitor_panel_snapshot on; }')->run;
    return $t;
}

# c1 is configured everywhere, the hub on A only (B and C learn its route)
my %I;
$I{A} = agent('A', "    amonitor_target c1 ws://127.0.0.1:$p1/;\n"
    . "    amonitor_target hub ws://127.0.0.1:$ph/;");
$I{B} = agent('B', "    amonitor_target c1 ws://127.0.0.1:$p1/;");
$I{C} = agent('C', "    amonitor_target c1 ws://127.0.0.1:$p1/;");

ok($s1->wait_connections(1, 5), 'c1 is dialed');
ok($hub->wait_connections(1, 5), 'the hub is dialed');
sleep_loop(2.5);
is($s1->connections, 1, 'c1 has exactly one agent connection');
is($s1->accepted, 1, 'and was never dialed twice');
is($hub->connections, 1, 'the hub has exactly one agent connection');
is($hub->accepted, 1, 'and was never dialed twice');

for my $n (qw(B C)) {
    ok($I{$n}->wait_error_log(
        qr/learned target "hub" at ws:\/\/127\.0\.0\.1:$ph\/ from the cluster/,
        5), "$n learned the hub's route from the cluster");
}

like($redis->cli('HGET', 'amon-c:routes', 'hub'),
    qr{^ws://127\.0\.0\.1:$ph/\nconfig\nA$}, 'the route is in redis with '
    . 'its origin');
like($redis->cli('GET', 'amon-c:lease:c1'), qr/^[ABC]:\d+:[0-9a-f]{8};c$/,
    'the lease of c1 names its owner');

# panels: three on each instance (most likely on both of its workers)
my %panels;
for my $n (sort keys %I) {
    $panels{$n} = [ map { $I{$n}->panel('/ws/panel', name => "$n$_") }
        1 .. 3 ];
}
my @all = map { @{ $panels{$_} } } sort keys %panels;
sleep_loop(0.5);

sub hb_seqs {
    my ($p, $target) = @_;
    my %n;
    for my $m ($p->messages) {
        my $j = $m->{json};
        next unless ref $j eq 'HASH' && ($j->{type} // '') eq 'heartbeat';
        next unless ($j->{target_id} // '') eq $target;
        $n{ $j->{payload}{metrics}{seq} }++;
    }
    return \%n;
}

subtest 'every panel of every instance gets every heartbeat once' => sub {
    my %first = (c1 => $s1->{seq} + 1, hub => $hub->{seq} + 1);
    for (1 .. 20) {
        $s1->heartbeat;
        $hub->heartbeat;
        sleep_loop(0.02);
    }
    my %last = (c1 => $s1->{seq}, hub => $hub->{seq});
    for my $target (qw(c1 hub)) {
        my @want = ($first{$target} .. $last{$target});
        ok(wait_for(sub {
            !grep { my $s = hb_seqs($_, $target);
                grep { !$s->{$_} } @want } @all }, 5),
            "$target: every panel got all " . scalar(@want) . ' heartbeats');
        sleep_loop(0.5);
        my @twice;
        for my $p (@all) {
            my $s = hb_seqs($p, $target);
            push @twice, $p->name . ":$_"
                for grep { ($s->{$_} // 0) > 1 } @want;
        }
        is("@twice", '', "$target: none got one twice");
    }
};

subtest 'protobuf panels get the events and acks converted' => sub {
    my %pp = map { $_ => $I{$_}->panel('/ws/panel?encoding=protobuf',
        name => "pb$_") } sort keys %I;
    sleep_loop(0.3);
    $s1->heartbeat for 1 .. 5;
    for my $n (sort keys %pp) {
        my $p = $pp{$n};
        ok(wait_for(sub { 5 <= grep { $_->{type} eq 'binary'
            && $_->{data} =~ /heartbeat/ && $_->{data} =~ /\bc1\b/ }
            $p->messages }, 5), "$n: 5 binary heartbeats of c1");
        my $id = uuid4();
        $p->send_json({ msg_id => $id, type => 'action', target_id => 'c1',
            timestamp => now_ms(), payload => { action => 'restart' } });
        my $b = $p->recv_until(sub { $_[0]{type} eq 'binary'
            && $_[0]{data} =~ /\Q$id\E/ }, 5);
        ok($b && $b->{data} =~ /action_ack/, "$n: a binary action_ack");
        is($s1->executed($id), 1, "$n: run once");
    }
};

sub action {
    my ($p, $target) = @_;
    my $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action', target_id => $target,
        timestamp => now_ms(), payload => { action => 'restart' } });
    return $id;
}

sub answer {
    my ($p, $id, $timeout) = @_;
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        return 0 unless ref $j eq 'HASH';
        return 1 if ($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id;
        return ($j->{type} // '') eq 'action_ack'
            && ($j->{payload}{action_msg_id} // '') eq $id;
    }, $timeout // 5);
    return $m ? $m->{json} : undef;
}

sub told {
    my ($p, $id) = @_;
    return scalar grep { ($_->{data} // '') =~ /\Q$id\E/ } $p->messages;
}

subtest 'actions from panels on all three instances' => sub {
    my @asked;
    for my $p (@all) {
        push @asked, [ $p, action($p, 'c1') ];
    }
    for my $x (@asked) {
        my ($p, $id) = @$x;
        my $a = answer($p, $id);
        ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success}
            && $a->{payload}{final}, $p->name . ': acked, final')
            or diag(encode_json($a // {}));
    }
    sleep_loop(0.3);
    for my $x (@asked) {
        my ($p, $id) = @$x;
        is($s1->executed($id), 1, $p->name . ': run once');
        my @others = grep { $_ != $p && told($_, $id) } @all;
        is(scalar @others, 0, $p->name . ': no other panel got its ack');
    }
    is($s1->accepted, 1, 'still one connection to c1');
};

subtest 'the same msg_id through all three instances runs once' => sub {
    my $id = uuid4();
    my @p = map { $panels{$_}[0] } qw(A B C);
    for my $p (@p) {
        $p->send_json({ msg_id => $id, type => 'action', target_id => 'c1',
            timestamp => now_ms(), payload => { action => 'restart' } });
    }
    my @a = map { answer($_, $id) } @p;
    is(scalar(grep { $_ } @a), 3, 'all three panels got an answer');
    sleep_loop(0.3);
    is($s1->executed($id), 1, 'the SDK ran it once');
};

subtest 'a target registered through A is acted on through C' => sub {
    my ($cid) = $hub->conn_ids;
    $hub->send_to($cid, { msg_id => uuid4(), type => 'register',
        target_id => 'reg', timestamp => now_ms(),
        payload => { target_id => 'reg', sdk_url => $reg->url } });
    ok($reg->wait_connections(1, 5), 'reg is dialed');
    ok($I{C}->wait_error_log(qr/learned target "reg" .* from the cluster/, 5),
        'C learned it');
    my $p = $panels{C}[0];
    my $id = action($p, 'reg');
    my $a = answer($p, $id);
    ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
        'an action through C is acked') or diag(encode_json($a // {}));
    is($reg->executed($id), 1, 'reg ran it once');
    sleep_loop(1);
    is($reg->accepted, 1, 'reg has one agent connection');
    like($redis->cli('HGET', 'amon-c:routes', 'reg'),
        qr{\nregister\n}, 'its route says it was registered');
};

subtest 'a new panel on every instance is told every target is up' => sub {
    for my $n (sort keys %I) {
        my $p = $I{$n}->panel('/ws/snap');
        my %st;
        wait_for(sub {
            while (my $m = $p->recv(0.05)) {
                my $j = $m->{json};
                $st{ $j->{target_id} } = $j->{payload}{state}
                    if ref $j eq 'HASH'
                    && ($j->{type} // '') eq 'target_status';
            }
            return 3 == grep { $st{$_} } qw(c1 hub reg);
        }, 3);
        is($st{$_} // 'none', 'up', "$n: $_ is up") for qw(c1 hub reg);
    }
};

subtest 'a stalled instance slows nobody and catches up' => sub {
    my %owner = map { $_ => (($redis->cli('GET', "amon-c:lease:$_")
        =~ /^(\w)/)[0] // '') } qw(c1 hub reg);
    my %owns = map { $_ => 1 } values %owner;
    # not c1's owner (its heartbeats are the ones counted), best none's
    my ($slow) = (grep({ !$owns{$_} } qw(C B A)),
        grep({ $_ ne $owner{c1} } qw(C B A)));
    my @others = grep { $_ ne $slow } sort keys %I;
    $I{$slow}->ignore_log(qr/redis/);
    # Redis drops a subscriber that falls 64 KiB behind
    $redis->cli('CONFIG', 'SET', 'client-output-buffer-limit',
        'pubsub 65536 32768 1');
    my @w = $I{$slow}->worker_pids;
    kill 'STOP', @w;
    my $first = $s1->{seq} + 1;
    $s1->heartbeat for 1 .. 300;
    my @want = ($first .. $s1->{seq});
    my @fast = map { @{ $panels{$_} } } @others;
    my $ok = wait_for(sub { !grep { my $s = hb_seqs($_, 'c1');
        grep { !$s->{$_} } @want } @fast }, 2);
    kill 'CONT', @w;
    ok($ok, "with $slow stopped, the panels of @others got all 300 "
        . 'heartbeats');
    # (whether Redis dropped the subscriber or the socket buffers held
    # the backlog depends on the kernel: either way it must catch up)
    note($I{$slow}->wait_error_log(qr/lost the connection to redis/, 2)
        ? "redis dropped $slow\'s subscriber" : 'the backlog was buffered');
    sleep_loop(1);
    $first = $s1->{seq} + 1;
    $s1->heartbeat for 1 .. 5;
    @want = ($first .. $s1->{seq});
    ok(wait_for(sub { !grep { my $s = hb_seqs($_, 'c1');
        grep { !$s->{$_} } @want } @{ $panels{$slow} } }, 5),
        "$slow\'s panels get heartbeats again");
    my @twice = map { my $s = hb_seqs($_, 'c1');
        grep { ($s->{$_} // 0) > 1 } @want } @all;
    is("@twice", '', 'none twice');
    is($s1->connections, 1, 'c1 still has one connection');
    $redis->cli('CONFIG', 'SET', 'client-output-buffer-limit',
        'pubsub 33554432 8388608 60');
};

subtest 'an unknown target is still UNKNOWN_TARGET' => sub {
    my $p = $panels{B}[0];
    my $id = action($p, 'nope');
    my $a = answer($p, $id);
    is($a && $a->{payload}{code}, 'UNKNOWN_TARGET', 'UNKNOWN_TARGET');
};

# a bus frame: its kind, then each field as a 32-bit big-endian length and
# its bytes; published with a RESP command of our own (binary safe)
sub publish_raw {
    my ($channel, $kind, @fields) = @_;
    my $msg = $kind . join('', map { pack('N', length $_) . $_ } @fields);
    my $cmd = join('', "*3\r\n", map { '$' . length($_) . "\r\n$_\r\n" }
        'PUBLISH', $channel, $msg);
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $rport, Proto => 'tcp') or return undef;
    print {$sock} $cmd;
    my $reply = <$sock>;
    close $sock;
    return $reply;
}

subtest 'a relayed frame must be text or binary: one of another type on '
    . 'the bus is dropped, the panels stay' => sub {
    for my $n (sort keys %I) {
        $I{$n}->ignore_log(qr/\[warn\] .*invalid cluster bus message dropped: its frame type is neither text nor binary/);
    }
    my $hb = '{"msg_id":"bus-f1","type":"heartbeat","target_id":"c1",'
        . '"payload":{"target_id":"c1"}}';
    for my $op ('8', '0', '9', 'x') {
        like(publish_raw('amon-c:ev', 'E', 'X:1:deadbeef', 'c1', $op, $hb)
            // '', qr/^:\d+/, "an event with frame type \"$op\" published");
    }
    like(publish_raw('amon-c:ev', 'K', 'c1', '8', $hb) // '', qr/^:\d+/,
        'an ack with frame type "8" published');
    sleep_loop(1);
    is(scalar(grep { !$_->is_open } @all), 0, 'every panel is still open');
    is(scalar(grep { my $p = $_; grep { ($_->{data} // '') =~ /bus-f1/ }
        $p->messages } @all), 0, 'none got the frame');
    my $seq = $s1->{seq} + 1;
    $s1->heartbeat;
    ok(wait_for(sub { !grep { !hb_seqs($_, 'c1')->{$seq} } @all }, 5),
        'and all get the next heartbeat');
    ok(scalar(grep { $I{$_}->wait_error_log(qr/invalid cluster bus message dropped: its frame type is neither text nor binary/, 5) } sort keys %I),
        'the drop is logged');
};

subtest 'a route from the bus whose id a message could not carry (not '
    . 'UTF-8, over 256 bytes) is not learned' => sub {
    my $bad = fake_sdk(target_id => 'bad-route', heartbeat_interval => 0);
    my $good = fake_sdk(target_id => 'good-route', heartbeat_interval => 0);
    my $burl = 'ws://127.0.0.1:' . $bad->port . '/';
    for my $id ("\xff\xfebad", "\xc3(zz", 'L' x 300) {
        publish_raw('amon-c:rt', 'T', 'X:1:deadbeef', $id, $burl,
            'register');
    }
    # the same way, a route with a good id is learned: the path works
    publish_raw('amon-c:rt', 'T', 'X:1:deadbeef', 'good-route',
        'ws://127.0.0.1:' . $good->port . '/', 'register');
    ok($good->wait_connections(1, 5), 'a good route is learned and dialed');
    sleep_loop(1);
    is($bad->accepted, 0, 'the bad ones are never dialed');
    for my $n (sort keys %I) {
        ok(!$I{$n}->wait_error_log(qr/learned target "(?!good-route)[^"]*" at \Q$burl\E/, 0.1),
            "$n learned none of them");
    }
};

# amonitor_target_{actions,failures}_total{target="hub"} of an instance
sub hub_counts {
    my ($n) = @_;
    my $r = $I{$n}->http_get('/metrics');
    my $body = $r ? $r->{body} // '' : '';
    my @c = map { $body =~ /^amonitor_target_${_}_total\{target="hub"\} (\d+)$/m
        ? $1 : 0 } qw(actions failures);
    return "@c";
}

subtest 'the target\'s counters are kept where it is written to' => sub {
    my %before = map { $_ => [ split / /, hub_counts($_) ] } qw(A B C);
    my $p = $I{B}->panel('/ws/panel', name => 'count');
    for my $action (qw(restart restart restart reboot reboot)) {
        my $id = uuid4();
        $p->send_json({ msg_id => $id, type => 'action', target_id => 'hub',
            timestamp => now_ms(), payload => { action => $action } });
        my $a = $p->answer_to($id, 5);
        is($a && $a->{type}, 'action_ack', "B: $action acked");
    }
    $p->close;
    my $want = sub {
        my ($n, $da, $df) = @_;
        return ($before{$n}[0] + $da) . ' ' . ($before{$n}[1] + $df);
    };
    # the instance holding the hub's lease writes to it
    my ($owner) = ($redis->cli('GET', 'amon-c:lease:hub') // '') =~ /^([ABC]):/;
    ok($owner, 'the hub\'s lease names its owner') or return;
    for my $n (qw(A B C)) {
        my ($da, $df, $what) = $n eq $owner
            ? (5, 2, 'which writes them to the hub: 5 actions, 2 failures')
            : (0, 0, 'which does not: none of either');
        is(hub_counts($n), $want->($n, $da, $df), "$n, $what");
    }
};

subtest 'a target_status from another instance reaches its subscribers only'
    => sub {
    # the hub is dialed by A; B's panels hear its state from the cluster
    my @want = map { $I{B}->panel('/ws/panel?targets=hub', name => "hub$_") }
        1 .. 2;
    my @other = map { $I{B}->panel('/ws/panel?targets=c1', name => "c1$_") }
        1 .. 2;
    sleep_loop(0.5);
    $_->clear for @want, @other;
    $hub->stop;
    my $down = sub {
        my ($p) = @_;
        grep { ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'target_status'
            && ($_->{json}{target_id} // '') eq 'hub' } $p->messages;
    };
    for my $p (@want) {
        ok(wait_for(sub { $down->($p) }, 5),
            $p->name . ': subscribed to hub, told its state');
    }
    sleep_loop(0.5);
    for my $p (@other) {
        is(scalar($down->($p)), 0,
            $p->name . ': subscribed to c1 only, not told the hub\'s');
    }
    $_->close for @want, @other;
};

done_testing();
