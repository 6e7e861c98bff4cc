# amonitor_cluster when owners go: the instance holding a target's
# connection is killed (kill -9) while panels on the other instances send
# actions; another worker takes the target over within the documented
# bound (lease + half a lease + the connect), every action ends for its
# panel (ack or error), none runs twice, also not when retried; an SDK
# that drops the connection is dialed again by exactly one worker.

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

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $sdk = fake_sdk(target_id => 'f1', heartbeat_interval => 0,
    ack_delay => 0.05);
my $sport = $sdk->port;

my $LEASE = 1.5;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 2, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-f: timeout=500ms;
    amonitor_cluster on lease=${\ ($LEASE * 1000) }ms;
    amonitor_instance_id $name;
    amonitor_target f1 ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 2s;
    amonitor_ack_late_window 0;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

my %I = map { $_ => agent($_) } qw(A B C);

ok($sdk->wait_connections(1, 5), 'f1 is dialed');
sleep_loop(1);
is($sdk->accepted, 1, 'once in the whole cluster');

sub owner {
    my ($v) = $redis->cli('GET', 'amon-f:lease:f1') =~ /^([ABC]):/;
    return $v // '';
}

sub action_text {
    my ($id) = @_;
    return { msg_id => $id, type => 'action', target_id => 'f1',
        timestamp => now_ms(), payload => { action => 'restart' } };
}

sub answered {
    my ($p, $id) = @_;
    for my $m ($p->messages) {
        my $j = $m->{json};
        next unless ref $j eq 'HASH';
        return $j if ($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id && $j->{payload}{final};
        return $j if ($j->{type} // '') eq 'action_ack'
            && ($j->{payload}{action_msg_id} // '') eq $id;
    }
    return undef;
}

subtest 'an SDK that drops the connection gets exactly one back' => sub {
    $sdk->drop_all;
    ok($sdk->wait_connections(1, 5), 'dialed again');
    my $n = $sdk->accepted;
    sleep_loop(2);
    is($sdk->connections, 1, 'one connection');
    is($sdk->accepted, $n, 'and no other attempt got through meanwhile');
};

subtest 'kill -9 of the owner instance under traffic' => sub {
    my $victim = owner();
    ok($victim, "instance $victim holds f1");
    my @alive = grep { $_ ne $victim } sort keys %I;
    my @panels = map { my $n = $_; map { $I{$n}->panel('/ws/panel',
        name => "$n$_") } 1 .. 2 } @alive;
    my (@sent, %by);
    my $i = 0;
    my $send = sub {
        my $p = $panels[$i++ % @panels];
        my $id = uuid4();
        $p->send_json(action_text($id));
        push @sent, $id;
        $by{$id} = $p;
    };
    $send->() for 1 .. 10;
    sleep_loop(0.3);
    my $accepted = $sdk->accepted;
    $I{$victim}->_kill_all;
    $I{$victim}->{running} = 0;
    my $t0 = time;
    my $back;
    while (time - $t0 < 6) {
        $send->();
        sleep_loop(0.1);
        if (!$back && $sdk->accepted > $accepted && $sdk->connections) {
            $back = time - $t0;
        }
    }
    ok($back, 'another instance took f1 over');
    my $bound = $LEASE * 1.5 + tscale(0.5);    # the slack: processing
    ok($back && $back <= $bound,
        sprintf('within %.2f s (%.2f s)', $bound, $back // -1));
    like(owner(), qr/^[@alive]$/, 'the new owner is a live instance');
    ok(wait_for(sub { !grep { !answered($by{$_}, $_) } @sent }, 5),
        'every one of ' . scalar(@sent) . ' actions ended for its panel');
    my @twice = grep { $sdk->executed($_) > 1 } @sent;
    is("@twice", '', 'none ran twice');
    my %codes;
    $codes{ ($_->{type} eq 'error') ? $_->{payload}{code} : 'ack' }++
        for map { answered($by{$_}, $_) } @sent;
    note(encode_json(\%codes));
    ok($codes{ack}, 'actions were acked before and after');

    # the same msg_ids again: those that may have run are duplicates
    for my $id (@sent) {
        $by{$id}->send_json(action_text($id));
    }
    sleep_loop(2.5);
    @twice = grep { $sdk->executed($_) > 1 } @sent;
    is("@twice", '', 'retries ran nothing twice');
    is($sdk->connections, 1, 'one connection to f1');
};

subtest 'a reload of the owner instance: one connection after it' => sub {
    my $o = owner();
    ok($o && $I{$o}->{running}, "instance $o holds f1");
    my $n = $sdk->accepted;
    ok($I{$o}->reload, "instance $o reloads");
    ok(wait_for(sub { $sdk->accepted > $n && $sdk->connections == 1 }, 5),
        'f1 is dialed again');
    sleep_loop(2);
    is($sdk->connections, 1, 'one connection');
    my @p = map { $I{$_}->panel('/ws/panel', name => "r$_") }
        grep { $I{$_}->{running} } sort keys %I;
    sleep_loop(0.3);
    my $seq = $sdk->{seq} + 1;
    $sdk->heartbeat;
    for my $p (@p) {
        ok($p->recv_until(sub { ($_[0]{json}{type} // '') eq 'heartbeat'
            && ($_[0]{json}{payload}{metrics}{seq} // 0) == $seq }, 5),
            $p->name . ': gets its heartbeats');
    }
};

done_testing();
