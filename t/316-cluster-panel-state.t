# amonitor_cluster: what panels are told of a target's state when its
# connection moves between instances.
# - The owner is frozen past its lease (SIGSTOP): another instance takes
#   the target and says "up"; the old owner, back, finds its lease gone
#   and closes its connection without saying "down" (it did, after the
#   new owner's "up", and every panel was left on "down" for good).
# - A panel opened on an instance that does not hold the target, then the
#   owner stops: the panel's instance takes the target over, and the
#   panel is never told "down" (a stop hands the target over).
# - The same, but the owner loses its SDK connection: it says "down", a
#   worker dials again (the panel's own, usually: the old owner waits
#   lease/2), and its "up" after the "down" reaches the panel (the
#   snapshot filter took it for the snapshot's "up" and dropped it).

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

my $sdk = fake_sdk(target_id => 'm1', heartbeat_interval => 0.2);
my $sport = $sdk->port;

my $LEASE = 1.5;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info',
        panel_snapshot => 1);
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-m: timeout=500ms;
    amonitor_cluster on lease=${\ ($LEASE * 1000) }ms;
    amonitor_instance_id $name;
    amonitor_target m1 ws://127.0.0.1:$sport/;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    $t->ignore_log(qr/lost the lease|redis/);
    return $t;
}

my %I = map { $_ => agent($_) } qw(A B);

sub owner {
    my ($v) = $redis->cli('GET', 'amon-m:lease:m1') =~ /^([AB]):/;
    return $v // '';
}

# the last target_status of m1 a panel got
sub last_state {
    my ($p) = @_;
    my $state = '';
    for my $m ($p->messages) {
        my $j = $m->{json};
        $state = $j->{payload}{state} // ''
            if ref $j eq 'HASH' && ($j->{type} // '') eq 'target_status'
            && ($j->{target_id} // '') eq 'm1';
    }
    return $state;
}

sub heartbeats {
    my ($p) = @_;
    return scalar grep {
        my $j = $_->{json};
        ref $j eq 'HASH' && ($j->{type} // '') eq 'heartbeat'
    } $p->messages;
}

ok($sdk->wait_connections(1, 5), 'm1 is dialed');
ok(wait_for(sub { owner() }, 5), 'and its lease is held');

subtest 'the owner frozen past its lease' => sub {
    my $old = owner();
    my ($new) = grep { $_ ne $old } sort keys %I;
    my %p = map { $_ => $I{$_}->panel('/ws/panel', name => "p$_") }
        sort keys %I;
    ok(wait_for(sub { !grep { last_state($_) ne 'up' } values %p }, 5),
        'both panels are told m1 is up');

    my @w = $I{$old}->worker_pids;
    kill 'STOP', @w;
    my $took = wait_for(sub { owner() eq $new }, $LEASE * 4);
    ok($took, "$new takes the lease while $old is frozen");
    ok(wait_for(sub { $sdk->connections >= 2 }, 5),
        "$new dials m1");
    sleep_loop(0.5);
    kill 'CONT', @w;

    ok($I{$old}->wait_error_log(qr/lost the lease of target "m1"/, 10),
        "$old, back, finds its lease gone");
    ok(wait_for(sub { $sdk->connections == 1 }, 5),
        'one connection to m1 again');
    sleep_loop(1);
    for my $n (sort keys %p) {
        is(last_state($p{$n}), 'up', "the panel on $n is left on up");
    }
    my %hb = map { $_ => heartbeats($p{$_}) } keys %p;
    ok(wait_for(sub { !grep { heartbeats($p{$_}) <= $hb{$_} } keys %p },
        3), 'and gets heartbeats');
};

subtest 'the owner stops while a panel elsewhere watches' => sub {
    my $old = owner();
    my ($other) = grep { $_ ne $old } sort keys %I;
    my $p = $I{$other}->panel('/ws/panel', name => 'watch');
    ok(wait_for(sub { last_state($p) eq 'up' }, 5),
        "the panel on $other is told m1 is up");
    $I{$old}->stop;
    ok(wait_for(sub { owner() eq $other }, $LEASE * 4),
        "$other takes m1 over");
    my $hb = heartbeats($p);
    ok(wait_for(sub { heartbeats($p) > $hb }, 3),
        '... and the panel gets its heartbeats');
    ok(!(grep {
            my $j = $_->{json};
            ref $j eq 'HASH' && ($j->{type} // '') eq 'target_status'
                && ($j->{payload}{state} // '') eq 'down'
        } $p->messages), 'the panel was never told m1 is down (a stop '
        . 'hands the target over)');
    is(last_state($p), 'up', '... and is left on up');
    $I{$old} = agent($old);
};

subtest 'the owner loses the SDK while a panel elsewhere watches' => sub {
    my $old = owner();
    my ($other) = grep { $_ ne $old } sort keys %I;
    my $p = $I{$other}->panel('/ws/panel', name => 'watch2');
    ok(wait_for(sub { last_state($p) eq 'up' }, 5),
        "the panel on $other (an instance started after the owner) is told "
        . 'm1 is up');
    $sdk->drop_all;
    ok(wait_for(sub { $sdk->connections == 1 && owner() ne '' }, $LEASE * 4),
        'm1 is dialed again (by ' . owner() . ')');
    ok(wait_for(sub { last_state($p) eq 'up' && grep {
            my $j = $_->{json};
            ref $j eq 'HASH' && ($j->{type} // '') eq 'target_status'
                && ($j->{payload}{state} // '') eq 'down'
        } $p->messages }, 5),
        'the panel is told down, then up')
        or diag('last state: ' . last_state($p));
};

$_->stop for grep { $_->{running} } values %I;
$sdk->stop;
$redis->stop;
done_testing;
