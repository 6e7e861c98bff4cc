# The snapshot that follows a subscribe is paid from the panel's
# subscribe budget: a set with a pattern that starts with "*" (here one
# nobody's id matches) reads every target record of the zone (one per
# record, one more per target told) on top of matching its pattern
# against every served target, so a panel sending such subscribes in a
# loop gets RATE_LIMITED instead of keeping the worker busy; another
# panel is answered meanwhile, and after the wait the panel subscribes
# again.  A set of ids only is looked up id by id: its snapshot costs
# one per id, so the same loop with one id is never limited, and it is
# still told its target.  A pattern that starts with text is matched
# only against the ids that start with it: the same loop with one is
# not limited either, and such a panel is told what it matches in the
# order a panel that takes everything is.  Without snapshots, sets of
# ids cost nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(tscale dead_targets);

my $N = 1000;
my $t = Test::AMonitor->new(workers => 1, panel_snapshot => 1);

# every target dials a port nobody listens on
my $targets = dead_targets('snap-', $N);

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 4m;
    amonitor_reconnect 10s 60s;
$targets
EOC
    config => <<'EOC',
location = /ws/panel { amonitor_panel on; }
location = /ws/quiet { amonitor_panel on; amonitor_panel_snapshot off; }
EOC
)->run;

# answers to subscribes s0 .. s(n-1): code => count ("subscribed" or the
# error code), and the first RATE_LIMITED message
sub subscribe_burst {
    my ($p, $n, $set) = @_;
    $p->send_json({ msg_id => "s$_", type => 'subscribe',
        payload => { targets => $set } }) for 0 .. $n - 1;
    $p->flush;

    my (%got, $limited);
    my $answers = 0;
    $p->recv_until(sub {
        my $j = $_[0]{json};
        return 0 unless ref $j eq 'HASH' && ($j->{msg_id} // '') =~ /^s\d+$/;
        my $code = $j->{type} eq 'error' ? $j->{payload}{code} : $j->{type};
        $got{$code}++;
        $limited //= $j->{payload}{message} if $code eq 'RATE_LIMITED';
        return ++$answers == $n;
    }, tscale(30));

    return (\%got, $limited);
}

subtest 'subscribes with a pattern in a loop are RATE_LIMITED' => sub {
    my $pa = $t->panel('/ws/panel?targets=');
    my $pb = $t->panel('/ws/panel?targets=');

    # 1000 matches and 1000 records each: 100 fit in the budget at once
    my ($got, $msg) = subscribe_burst($pa, 400, ['*-not-served']);
    cmp_ok($got->{RATE_LIMITED} // 0, '>=', 250, 'many are RATE_LIMITED')
        or diag(explain($got));
    cmp_ok($got->{subscribed} // 0, '>=', 75, 'the first ones are made');
    cmp_ok($got->{subscribed} // 0, '<=', 150, 'not many more than 100');
    like($msg // '', qr/^subscribing too often for the number of targets and patterns: try again in \d+ ms$/,
        'the message tells the wait');
    ok($pb->ping(undef, tscale(10)), 'the other panel is answered');
    ok($pa->is_open, 'the panel stays open');

    my ($wait) = ($msg // '') =~ /(\d+) ms/;
    Time::HiRes::sleep(($wait // 20) / 1000 + 0.1);
    $pa->send_json({ msg_id => 'again', type => 'subscribe',
        payload => { targets => ['snap-00001'] } });
    my $m = $pa->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ($j->{msg_id} // '') eq 'again'
    }, tscale(10));
    is($m && $m->{json}{type}, 'subscribed', 'after the wait: subscribed')
        or diag(explain($m && $m->{json}));
    ok($pa->recv_type('target_status', target_id => 'snap-00001',
        timeout => tscale(10)), 'and its snapshot follows');
};

subtest 'a set of ids is looked up, not read from every record' => sub {
    my $pa = $t->panel('/ws/panel?targets=');
    my ($got) = subscribe_burst($pa, 400, ['not-served']);
    is($got->{subscribed} // 0, 400, 'all 400 made') or diag(explain($got));

    ($got) = subscribe_burst($pa, 400, ['snap-00002', 'snap-00002']);
    is($got->{subscribed} // 0, 400, 'with a served id: all 400 made')
        or diag(explain($got));

    # each snapshot told the target once, though the set names it twice
    ok($pa->ping(undef, tscale(10)), 'the panel is answered');
    my $told = grep {
        ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'target_status'
            && ($_->{json}{target_id} // '') eq 'snap-00002'
    } $pa->messages;
    is($told, 400, 'one target_status per snapshot');

    $pa->send_json({ msg_id => 'three', type => 'subscribe',
        payload => { targets => ['snap-00010', 'not-served', 'snap-00003',
            'snap-00001'] } });
    ok($pa->recv_until(sub { ($_[0]{json}{msg_id} // '') eq 'three' },
        tscale(10)), 'subscribed to three served ids and one more');
    my @order;
    $pa->recv_until(sub {
        my $j = $_[0]{json};
        push @order, $j->{target_id}
            if ref $j eq 'HASH' && ($j->{type} // '') eq 'target_status';
        return @order == 3;
    }, tscale(10));
    is("@order", 'snap-00001 snap-00003 snap-00010',
        'told in the order of the ids');
};

subtest 'a pattern that starts with text costs what it matches' => sub {
    my $pa = $t->panel('/ws/panel?targets=');
    my ($got, $msg) = subscribe_burst($pa, 400, ['not-served-*']);
    is($got->{subscribed} // 0, 400, 'all 400 made')
        or diag(explain([$got, $msg]));

    ($got) = subscribe_burst($pa, 400, ['snap-00002*']);
    is($got->{subscribed} // 0, 400, 'with a served target: all 400 made')
        or diag(explain($got));
    ok($pa->ping(undef, tscale(10)), 'the panel is answered');
    my $told = grep {
        ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'target_status'
    } $pa->messages;
    is($told, 400, 'told its one target once per snapshot');

    # the order of a panel that takes everything, less what is not wanted
    my $all = $t->panel('/ws/panel');
    ok($all->ping(undef, tscale(10)), 'a panel of everything is answered');
    my @every = grep { defined } map {
        ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'target_status'
            ? $_->{json}{target_id} : undef
    } $all->messages;
    is(scalar @every, $N, "it is told all $N targets");
    my @want = grep {
        /^snap-0001/ || /^snap-0090/ || $_ eq 'snap-00500'
    } @every;
    is(scalar @want, 21, '21 of them are wanted below');

    my $pb = $t->panel('/ws/panel?targets=snap-0090*,snap-00500,snap-0001*,'
        . 'snap-0001*,snap-00011');
    my @order;
    $pb->recv_until(sub {
        my $j = $_[0]{json};
        push @order, $j->{target_id}
            if ref $j eq 'HASH' && ($j->{type} // '') eq 'target_status';
        return @order == 21;
    }, tscale(10));
    ok($pb->ping(undef, tscale(10)), 'and nothing more before a ping');
    is(scalar(grep {
        ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'target_status'
    } $pb->messages), 21, 'each wanted target told once');
    is("@order", "@want", 'in the order the panel of everything is told');
};

subtest 'without snapshots, ids cost nothing' => sub {
    my $pa = $t->panel('/ws/quiet?targets=');
    my ($got) = subscribe_burst($pa, 400, ['not-served']);
    is($got->{subscribed} // 0, 400, 'all 400 made') or diag(explain($got));
};

$t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->stop;

done_testing;
