# Patterns are kept once per worker, however many panels use them: a
# target seen for the first time is matched against each different
# pattern once, and linked to every panel of the patterns that match
# (each panel once, even with two matching patterns or the id named as
# well).  A worker keeps at most 10,000 different patterns: a set that
# would bring more is refused (400 in the handshake, INVALID_SUBSCRIPTION
# for a subscribe) and patterns other panels use already do not count.
# A pattern no panel uses any more is given back.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $web = fake_sdk(port => $t->port(1), target_id => 'web-1',
    heartbeat_interval => 0);
my $db = fake_sdk(port => $t->port(2), target_id => 'db-1',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 4m;
    amonitor_allow_url ws://127.0.0.1:*;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

my $N = 40;
my @shared = map {
    $t->panel('/ws/panel?targets=web-*,w*-1', name => "shared-$_")
} 1 .. $N;
my $named = $t->panel('/ws/panel?targets=web-1,web-*', name => 'named');
my $dbp = $t->panel('/ws/panel?targets=db-*', name => 'db');
my $q = $t->panel('/ws/panel?targets=', name => 'dialer');

sub dial {
    my ($sdk) = @_;
    my $id = uuid4();
    $q->send_json({ msg_id => $id, type => 'action', timestamp => now_ms(),
        target_id => $sdk->target_id,
        payload => { action => 'restart', target_url => $sdk->url } });
    return $q->recv_type('action_ack', action_msg_id => $id, timeout => 10);
}

# the heartbeats of "target" a panel received, by msg_id
sub beats {
    my ($p, $target) = @_;
    my %n;
    for my $m ($p->messages) {
        my $j = $m->{json};
        $n{ $j->{msg_id} }++ if ref $j eq 'HASH'
            && ($j->{type} // '') eq 'heartbeat'
            && ($j->{target_id} // '') eq $target;
    }
    return \%n;
}

subtest 'a new target reaches the panels of the patterns it matches' => sub {
    ok(dial($web), 'web-1 is dialed on demand and acks');
    ok(dial($db), 'db-1 is dialed on demand and acks');
    $web->heartbeat;
    $db->heartbeat;
    ok(wait_for(sub {
        !grep { keys %{ beats($_, 'web-1') } < 1 } @shared, $named
    }, 10), "all $N panels of web-* and the one that names web-1 get it");
    ok(wait_for(sub { keys %{ beats($dbp, 'db-1') } >= 1 }, 10),
        'the db-* panel gets db-1');
    sleep_loop(0.5);

    my @twice = grep { grep { $_ != 1 } values %{ beats($_, 'web-1') } }
        @shared, $named;
    is(scalar @twice, 0, 'each panel gets the heartbeat once, not once '
        . 'per matching pattern or name');
    is(scalar(keys %{ beats($dbp, 'web-1') }), 0, 'db-* does not get web-1');
    is(scalar(grep { keys %{ beats($_, 'db-1') } } @shared), 0,
        'web-* does not get db-1');
};

# 38 panels of 256 different patterns each: 9,728, with the 3 above
# (web-*, w*-1, db-*) 9,731 different patterns in the worker
my @full = map {
    my $i = $_;
    $t->panel('/ws/panel?targets='
        . join(',', map {"L$i-$_-*"} 1 .. 256), name => "full-$i")
} 1 .. 38;

subtest 'at most 10,000 different patterns in a worker' => sub {
    ok(!grep({ !$_->ping } @full), 'the 38 panels of 256 patterns are open');

    # 256 + 13 more: 10,000 exactly; 256 + 14: one too many
    my @more = map {"M-$_-*"} 1 .. 270;
    my $extra = $t->panel('/ws/panel?targets=' . join(',', @more[0 .. 255]),
        name => 'extra');
    ok($extra->ping, '9,987 different patterns');

    my ($code, $res) = panel_handshake_status(
        $t->ws_url('/ws/panel?targets=' . join(',', @more[256 .. 269])));
    is($code, 400, 'a handshake bringing the 10,001st pattern: 400');
    like($res->{body} // '', qr/too many different patterns/,
        'the body says why');

    my $last = $t->panel('/ws/panel?targets=' . join(',', @more[256 .. 268]),
        name => 'last');
    ok($last->ping, 'the 10,000th is accepted');

    ($code) = panel_handshake_status(
        $t->ws_url('/ws/panel?targets=' . join(',', map {"L1-$_-*"} 1 .. 256)));
    is($code, 101, 'patterns the worker keeps already do not count');

    $q->send_json({ msg_id => 's1', type => 'subscribe',
        payload => { targets => ['N-*'] } });
    my $e = $q->recv_type('error', msg_id => 's1', timeout => 5);
    is($e && $e->{json}{payload}{code}, 'INVALID_SUBSCRIPTION',
        'a subscribe bringing one more: INVALID_SUBSCRIPTION');
    like($e && $e->{json}{payload}{message},
        qr/too many different patterns on this worker \(at most 10000\)/,
        'the message says why');
};

subtest 'patterns no panel uses are given back' => sub {
    $full[0]->close;
    $full[1]->close;
    my @new = map {"N-$_-*"} 1 .. 500;
    my $m;
    ok(wait_for(sub {
        $q->send_json({ msg_id => 's2', type => 'subscribe',
            payload => { targets => [@new[0 .. 255]] } });
        $m = $q->recv_until(sub {
            my $j = $_[0]{json};
            ref $j eq 'HASH' && ($j->{msg_id} // '') eq 's2'
        }, 5);
        $m && $m->{json}{type} eq 'subscribed'
    }, 10), 'once two panels are gone, 256 new patterns are accepted')
        or diag(explain($m && $m->{json}));

    # the table after the removals still links the shared pattern
    $web->heartbeat;
    ok(wait_for(sub {
        !grep { keys %{ beats($_, 'web-1') } < 2 } @shared
    }, 10), 'the shared pattern still reaches its panels');
};

$t->ignore_log(qr/panel handshake refused: too many different patterns/);
$t->stop;
$web->stop;
$db->stop;
done_testing;
