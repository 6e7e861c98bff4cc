# Panels choose what they receive: ?targets=ids,patterns in the handshake
# and a "subscribe" message at run time, answered with "subscribed" and
# the resulting set (JSON and protobuf panels).  No ?targets: everything,
# as before.  The snapshot honours the set; a target that appears later
# (an SDK's register) reaches the panels whose pattern matches it; bad
# lists are refused (400 in the handshake, INVALID_SUBSCRIPTION after)
# and leave the set as it was.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1, panel_snapshot => 1);
my %sdk = map {
    my ($id, $n) = @$_;
    ($id => fake_sdk(port => $t->port($n), target_id => $id,
        heartbeat_interval => 0))
} (['web-1', 1], ['web-2', 2], ['db-1', 3]);
my $late = fake_sdk(port => $t->port(4), target_id => 'late-1',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target web-1 ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target web-2 ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target db-1 ws://127.0.0.1:%%PORT_3%%/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_reconnect 50ms 200ms;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk{$_}->wait_connections(1), "the worker dialed $_") for sort keys %sdk;
sleep_loop(0.3);

# every target says something; "tag" tells the rounds apart
sub round {
    my ($tag) = @_;
    $sdk{$_}->emit_event("ev-$tag", $_) for sort keys %sdk;
}

# the targets of the "ev-$tag" events a panel got, sorted (waits for the
# marker event that db-1 sends last, through a panel that takes all)
sub got {
    my ($p, $tag) = @_;
    my %seen;
    wait_for(sub {
        for my $m ($p->pending) {
            my $j = $m->{json} or next;
            next unless ($j->{type} // '') eq 'event'
                && ($j->{payload}{event_name} // '') eq "ev-$tag";
            $seen{ $j->{target_id} } = 1;
        }
        0;
    }, 1);
    $p->clear;
    return join(',', sort keys %seen);
}

my $all = $t->panel('/ws/panel', name => 'all');
my $ids = $t->panel('/ws/panel?targets=db-1', name => 'ids');
my $pat = $t->panel('/ws/panel?targets=web-*', name => 'pattern');
my $none = $t->panel('/ws/panel?targets=', name => 'none');
my $esc = $t->panel('/ws/panel?targets=web-2%2Cdb-%2A', name => 'escaped');

subtest 'the snapshot honours the subscription' => sub {
    my %snap;
    for my $p ($all, $ids, $pat, $none, $esc) {
        my @st;
        while (my $m = $p->recv(0.5)) {
            push @st, $m->{json}{payload}{target_id}
                if ($m->{json}{type} // '') eq 'target_status';
        }
        $snap{ $p->name } = join(',', sort @st);
    }
    is($snap{all}, 'db-1,web-1,web-2', 'no ?targets: every target');
    is($snap{ids}, 'db-1', 'an id: that target');
    is($snap{pattern}, 'web-1,web-2', 'a pattern: the targets it matches');
    is($snap{none}, '', 'an empty list: nothing');
    is($snap{escaped}, 'db-1,web-2', 'the argument is URL-unescaped');
};

subtest 'live frames go to the subscribers only' => sub {
    round('a');
    is(got($all, 'a'), 'db-1,web-1,web-2', 'the panel without ?targets');
    is(got($ids, 'a'), 'db-1', 'the id panel');
    is(got($pat, 'a'), 'web-1,web-2', 'the pattern panel');
    is(got($none, 'a'), '', 'the panel that wants nothing');
    is(got($esc, 'a'), 'db-1,web-2', 'an id and a pattern together');
};

subtest 'subscribe at run time: the answer, a snapshot, then the new set'
    => sub {
    $ids->send_json({ msg_id => 'sub-1', type => 'subscribe',
        payload => { targets => ['web-2', 'nothing-*'] } });
    my $a = $ids->recv_type('subscribed', timeout => 5);
    ok($a, 'answered with "subscribed"') or return;
    is($a->{json}{msg_id}, 'sub-1', 'under the msg_id of the request');
    is_deeply($a->{json}{payload}{targets}, ['web-2', 'nothing-*'],
        'with the resulting set');
    my $st = $ids->recv_type('target_status', timeout => 5);
    is($st && $st->{json}{payload}{target_id}, 'web-2',
        'then the snapshot of the new set');
    round('b');
    is(got($ids, 'b'), 'web-2', 'db-1 no more, web-2 now');
    is(got($all, 'b'), 'db-1,web-1,web-2', 'the other panels unchanged');
    is(got($pat, 'b'), 'web-1,web-2', 'the pattern panel unchanged');

    $none->send_json({ msg_id => 'sub-2', type => 'subscribe',
        payload => { targets => ['*'] } });
    my $b = $none->recv_type('subscribed', timeout => 5);
    is_deeply($b && $b->{json}{payload}{targets}, ['*'], '"*": everything');
    round('c');
    is(got($none, 'c'), 'db-1,web-1,web-2', 'and everything arrives');

    $all->send_json({ msg_id => 'sub-3', type => 'subscribe',
        payload => { targets => [] } });
    my $c = $all->recv_type('subscribed', timeout => 5);
    is_deeply($c && $c->{json}{payload}{targets}, [], 'an empty set');
    round('d');
    is(got($all, 'd'), '', 'and nothing arrives');
    is(got($none, 'd'), 'db-1,web-1,web-2', 'for the others it does');
};

subtest 'bad subscriptions are refused and change nothing' => sub {
    my @bad = (
        [{ targets => [''] }, 'INVALID_SUBSCRIPTION', qr/empty/],
        [{ targets => ["a\x01b"] }, 'INVALID_SUBSCRIPTION', qr/control/],
        [{ targets => ['x' x 257] }, 'INVALID_SUBSCRIPTION', qr/longer/],
        [{ targets => [map {"t$_"} 1 .. 257] }, 'INVALID_SUBSCRIPTION',
            qr/too many/],
        [{ targets => 'web-1' }, 'INVALID_MESSAGE', qr/array of strings/],
        [{ targets => [1] }, 'INVALID_MESSAGE', qr/array of strings/],
        [{}, 'INVALID_MESSAGE', qr/payload\.targets/],
    );
    my $n = 0;
    for my $b (@bad) {
        $n++;
        $pat->send_json({ msg_id => "bad-$n", type => 'subscribe',
            payload => $b->[0] });
        my $e = $pat->recv_type('error', msg_id => "bad-$n", timeout => 5);
        is($e && $e->{json}{payload}{code}, $b->[1], "bad list $n: $b->[1]");
        like($e && $e->{json}{payload}{message}, $b->[2],
            "bad list $n: why");
    }
    # "targets" twice: parsers differ on which counts, so neither does
    $pat->send_text('{"msg_id":"bad-twice","type":"subscribe","payload":'
        . '{"targets":["db-1"],"targets":["web-1"]}}');
    my $e = $pat->recv_type('error', msg_id => 'bad-twice', timeout => 5);
    is($e && $e->{json}{payload}{code}, 'INVALID_MESSAGE',
        'payload.targets twice: INVALID_MESSAGE');
    like($e && $e->{json}{payload}{message}, qr/given twice/, 'and why');
    round('e');
    is(got($pat, 'e'), 'web-1,web-2', 'the pattern panel kept its set');
};

subtest 'bad ?targets refuse the handshake' => sub {
    for my $q ('targets=a,,b', 'targets=a%01', 'targets=' . ('y' x 300)) {
        my ($code, $res) = panel_handshake_status($t->ws_url("/ws/panel?$q"));
        is($code, 400, "?$q: 400") or diag(explain($res));
    }
};

subtest 'a protobuf panel subscribes in protobuf' => sub {
    my $pb = $t->panel('/ws/panel?encoding=protobuf&targets=', name => 'pb');
    sleep_loop(0.3);
    $pb->clear;
    my $json = '{"targets":["db-*"]}';
    $pb->send_binary(pb_str(1, 'sub-pb') . pb_str(3, 'subscribe')
        . pb_str(6, $json));
    my $b = $pb->recv_until(sub { $_[0]{type} eq 'binary'
        && pb_field($_[0]{data}, 3) eq 'subscribed' }, 5);
    ok($b, 'a binary "subscribed"') or return;
    is(pb_field($b->{data}, 1), 'sub-pb', 'msg_id');
    is(pb_field($b->{data}, 6), '{"targets":["db-*"]}',
        'payload: the set as JSON text, as target_status has it');
    $pb->clear;
    round('f');
    my @ev;
    wait_for(sub {
        @ev = grep { $_->{type} eq 'binary'
            && pb_field($_->{data}, 3) eq 'event' } $pb->pending;
        @ev >= 1;
    }, 5);
    sleep_loop(0.3);
    @ev = grep { $_->{type} eq 'binary' && pb_field($_->{data}, 3) eq 'event' }
        $pb->pending;
    is(join(',', map { pb_field($_->{data}, 4) } @ev), 'db-1',
        'then events of db-1 only, in protobuf');
};

subtest 'a target that appears later reaches the matching patterns' => sub {
    my $lp = $t->panel('/ws/panel?targets=late-*', name => 'late');
    my $lx = $t->panel('/ws/panel?targets=late-1', name => 'late-id');
    $sdk{'web-1'}->send_all({ msg_id => 'reg-1', type => 'register',
        target_id => 'web-1', payload => { target_id => 'late-1',
            sdk_url => $late->url } });
    ok($late->wait_connections(1), 'the worker dialed late-1');
    for my $p ($lp, $lx) {
        my $st = $p->recv_type('target_status', target_id => 'late-1',
            timeout => 5);
        is($st && $st->{json}{payload}{state}, 'up',
            $p->name . ': late-1 is up');
    }
    $late->emit_event('ev-g', 'x');
    round('g');
    is(got($lp, 'g'), 'late-1', 'the pattern panel gets late-1 only');
    is(got($lx, 'g'), 'late-1', 'the id panel too, once');
    is(got($pat, 'g'), 'web-1,web-2', 'web-* does not match it');
};

$t->stop;
done_testing;


sub pb_str {
    my ($f, $s) = @_;
    my $len = length $s;
    my $v = '';
    while ($len >= 0x80) { $v .= chr(($len & 0x7f) | 0x80); $len >>= 7 }
    return chr(($f << 3) | 2) . $v . chr($len) . $s;
}

# the first length-delimited field "n" of a protobuf message ('' if none)
sub pb_field {
    my ($buf, $n) = @_;
    my $pos = 0;
    while ($pos < length $buf) {
        my ($key, $shift) = (0, 0);
        my $b;
        do { $b = ord substr($buf, $pos++, 1);
            $key |= ($b & 0x7f) << $shift; $shift += 7 } while ($b & 0x80);
        my ($field, $wt) = ($key >> 3, $key & 7);
        my $v = 0;
        $shift = 0;
        do { $b = ord substr($buf, $pos++, 1);
            $v |= ($b & 0x7f) << $shift; $shift += 7 } while ($b & 0x80);
        if ($wt == 2) {
            return substr($buf, $pos, $v) if $field == $n;
            $pos += $v;
        }
    }
    return '';
}
