# amonitor_cluster: two instances get the first action for the same new
# target_url at once.  Both ask for the target's lease; one gets it and
# dials; the other hands its action to that owner, whose connection is
# still being made: the owner holds the action until the connection is
# open (at most half its ack timeout) and writes it then.  Every action
# is acked once, run once, and the SDK is dialed once.  An SDK that never
# finishes its handshake gets neither action: each is answered
# TARGET_UNAVAILABLE (final, released) in time, and a retry with the same
# msg_id runs once the SDK answers.  Starts its own redis-server.

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

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=fr: timeout=500ms;
    amonitor_cluster on lease=3s;
    amonitor_instance_id $name;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 3s;
    amonitor_connect_timeout 20s;
    amonitor_dial_limit_per_panel 64;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

sub send_act {
    my ($p, $id, $target, $sdk) = @_;
    $p->send_json({ msg_id => $id, type => 'action', target_id => $target,
        timestamp => now_ms(), payload => { action => 'restart',
            target_url => $sdk->url } });
}

# what a panel got about action $id: its codes ('ack' for an action_ack),
# each final
sub answers {
    my ($p, $id) = @_;
    my @r;
    for my $m (map { $_->{json} } $p->messages) {
        next unless ref $m eq 'HASH' && ref $m->{payload} eq 'HASH';
        my $about = $m->{type} eq 'error' ? $m->{msg_id}
            : $m->{payload}{action_msg_id};
        next unless ($about // '') eq $id;
        push @r, ($m->{type} eq 'action_ack' ? 'ack' : $m->{payload}{code})
            . ($m->{payload}{final} ? '' : ' (not final)');
    }
    return @r;
}

my $A = agent('A');
my $B = agent('B');
my $pa = $A->panel('/ws/panel', name => 'a');
my $pb = $B->panel('/ws/panel', name => 'b');

subtest 'the first actions of two instances at once are both run' => sub {
    for my $n (1 .. 5) {
        my $sdk = fake_sdk(target_id => "fr-$n", heartbeat_interval => 0);
        my ($ia, $ib) = (uuid4(), uuid4());
        send_act($pa, $ia, "fr-$n", $sdk);
        send_act($pb, $ib, "fr-$n", $sdk);
        my $a = $pa->answer_to($ia, 6);
        my $b = $pb->answer_to($ib, 6);
        ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
            "fr-$n: A's action is acked") or diag(encode_json($a // {}));
        ok($b && $b->{type} eq 'action_ack' && $b->{payload}{success},
            "fr-$n: B's action is acked") or diag(encode_json($b // {}));
        is($sdk->executed($ia), 1, 'A\'s ran once');
        is($sdk->executed($ib), 1, 'B\'s ran once');
        is($sdk->accepted, 1, 'the SDK was dialed once');
    }
};

subtest 'an SDK that never answers: both in time, then a retry runs' => sub {
    my $sdk = fake_sdk(target_id => 'fr-hang', heartbeat_interval => 0);
    $sdk->pause_accept;
    my ($ia, $ib) = (uuid4(), uuid4());
    my $t0 = time;
    send_act($pa, $ia, 'fr-hang', $sdk);
    send_act($pb, $ib, 'fr-hang', $sdk);
    my $a = $pa->answer_to($ia, 8);
    my $b = $pb->answer_to($ib, 8);
    my $took = time - $t0;
    for ([A => $a], [B => $b]) {
        my ($who, $m) = @$_;
        ok($m && $m->{type} eq 'error'
            && $m->{payload}{code} eq 'TARGET_UNAVAILABLE'
            && $m->{payload}{final}, "$who: TARGET_UNAVAILABLE, final")
            or diag(encode_json($m // {}));
    }
    cmp_ok($took, '<', 5, 'both within the ack timeout (and a little)');

    $sdk->resume_accept;
    ok(wait_for(sub { $sdk->connections >= 1 }, 6), 'the SDK is connected');
    send_act($pa, $ia, 'fr-hang', $sdk);
    send_act($pb, $ib, 'fr-hang', $sdk);
    $a = $pa->answer_to($ia, 6);
    $b = $pb->answer_to($ib, 6);
    ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
        'A\'s retry is acked') or diag(encode_json($a // {}));
    ok($b && $b->{type} eq 'action_ack' && $b->{payload}{success},
        'B\'s retry is acked') or diag(encode_json($b // {}));
    is($sdk->executed($ia), 1, 'A\'s ran once');
    is($sdk->executed($ib), 1, 'B\'s ran once');
    is_deeply([answers($pa, $ia)], ['TARGET_UNAVAILABLE', 'ack'],
        'A\'s panel got two answers, each final');
    is_deeply([answers($pb, $ib)], ['TARGET_UNAVAILABLE', 'ack'],
        'B\'s panel got two answers, each final');
};

$A->no_error_log(qr/\[alert\]|exited on signal/);
$B->no_error_log(qr/\[alert\]|exited on signal/);

done_testing;
