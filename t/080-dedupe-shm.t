# Idempotency in the shared memory zone: a msg_id seen before is answered
# "duplicate ignored" by the agent (with "duplicate":true and the
# original result) and never forwarded again; claims are released when
# the action never reached the SDK and kept when it did; entries expire
# after amonitor_dedupe_ttl; a full zone evicts the least recently used;
# hundreds of actions in flight each find their ack; records of actions
# used again (and those too long to keep) keep their msg_ids; actions that
# come in one read are claimed in their order, before a query after them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Mojo::IOLoop;

my $QUIET = tscale(0.5);

sub action {
    my ($id, $target, %o) = @_;
    return { msg_id => $id, type => 'action', target_id => $target,
        timestamp => now_ms(),
        payload => { action => $o{action} // 'restart',
            params => $o{params} // {} } };
}

# the answer (ack for it or error with its msg_id) to action $id
sub answer {
    my ($p, $id, $timeout) = @_;
    return $p->answer_to($id, $timeout // 5);
}

sub ask {
    my ($p, $id, $target, %o) = @_;
    $p->send_json(action($id, $target, %o));
    return answer($p, $id, $o{timeout});
}

# every answer a panel got for $id (after a quiet period)
sub answers_for {
    my ($p, $id) = @_;
    sleep_loop($QUIET);
    return grep {
        my $j = $_->{json};
        ref $j eq 'HASH' && ((($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id) || (($j->{type} // '') eq
            'action_ack' && ($j->{payload}{action_msg_id} // '') eq $id))
    } $p->messages;
}

sub is_dup {
    my ($j) = @_;
    return $j && ($j->{type} // '') eq 'action_ack'
        && ($j->{payload}{message} // '') =~ /duplicate ignored/ ? 1 : 0;
}

sub status {
    my ($t) = @_;
    my $r = $t->http_get('/status');
    return try_decode_json($r->{body}) // {};
}


my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'dd-a',
    heartbeat_interval => 0);
my $port_down = $t->port(2);    # nothing listens here yet
my $sdk_drop = fake_sdk(port => $t->port(3), target_id => 'dd-drop',
    heartbeat_interval => 0);
my $sdk_down;

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target dd-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target dd-down ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target dd-drop ws://127.0.0.1:%%PORT_3%%/;
    amonitor_ack_timeout 2s;
    amonitor_connect_timeout 1s;
    amonitor_reconnect 50ms 200ms;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed dd-a');
ok($sdk_drop->wait_connections(1), 'the worker dialed dd-drop');

my $p = $t->panel('/ws/panel', name => 'p');
my $q = $t->panel('/ws/panel', name => 'q');

subtest 'a duplicate is answered "duplicate ignored" with the original' => sub {
    my $id = uuid4();
    my $first = ask($p, $id, 'dd-a', params => { n => 1 });
    ok($first, 'the first action was answered');
    is($first && $first->{type}, 'action_ack', 'by an ack');
    my ($sdk_ack) = grep { $_->{payload}{action_msg_id} eq $id } $sdk->acks;
    ok($first && $sdk_ack && $first->{msg_id} eq $sdk_ack->{msg_id},
        'the ack the SDK sent');

    my $dup = ask($p, $id, 'dd-a', params => { n => 2 });
    ok($dup, 'the duplicate was answered');
    is($dup && $dup->{type}, 'action_ack', 'by an action_ack');
    is($dup && $dup->{payload}{action_msg_id}, $id, 'for the same msg_id');
    ok($dup && $dup->{payload}{success}, 'success true');
    is($dup && $dup->{payload}{message}, 'duplicate ignored',
        'message "duplicate ignored"');
    ok($dup && $dup->{payload}{duplicate}
        && $dup->{payload}{duplicate} eq '1', '"duplicate":true');
    is($dup && $dup->{payload}{state}, 'done', '"state":"done"');
    ok($dup && $dup->{payload}{final}, '"final":true');
    is_deeply($dup && $dup->{payload}{original},
        decode_json(encode_json($sdk_ack->{payload})),
        '"original" holds the first ack\'s payload');
    ok($dup && $dup->{msg_id} ne $id && $dup->{msg_id} ne $first->{msg_id},
        'the duplicate ack has a new msg_id of its own');
    is($dup && $dup->{target_id}, 'dd-a', 'and the target_id');

    # another panel, the same msg_id
    my $dup2 = ask($q, $id, 'dd-a');
    ok(is_dup($dup2), 'a duplicate from another panel is ignored too');

    sleep_loop($QUIET);
    is($sdk->executed($id), 1, 'the fake SDK executed the action once');
    is(scalar(answers_for($p, $id)), 2,
        'the panel got exactly one answer per action');
};

subtest 'a duplicate while the first is pending has no original' => sub {
    $sdk->set(ack_delay => 1);
    my $id = uuid4();
    $p->send_json(action($id, 'dd-a'));
    ok(wait_for(sub { $sdk->executed($id) }, 5),
        'the SDK received the first action');
    my $dup = ask($q, $id, 'dd-a');
    ok(is_dup($dup), 'the duplicate is answered "duplicate ignored"');
    ok($dup && $dup->{payload}{duplicate}, '"duplicate":true');
    ok($dup && !exists $dup->{payload}{original},
        'no "original" while the first is pending')
        or diag(encode_json($dup));
    is($dup && $dup->{payload}{state}, 'pending', '"state":"pending"');
    ok($dup && defined $dup->{payload}{success} && !$dup->{payload}{success},
        '"success":false (the outcome is not known yet)');
    is($dup && $dup->{payload}{message},
        'duplicate ignored: the first attempt is still pending',
        'the message says so');
    ok(!grep({ ($_->{json}{type} // '') eq 'action_ack' } $p->pending),
        'at once, before the first ack');

    my $first = answer($p, $id, 5);
    is($first && $first->{type}, 'action_ack', 'the first panel got the ack');
    ok($first && $first->{payload}{message} !~ /duplicate/,
        'the real one');
    $sdk->set(ack_delay => 0);

    my $third = ask($q, $id, 'dd-a');
    ok(is_dup($third) && $third->{payload}{original},
        'a later duplicate carries the original')
        or diag(encode_json($third // {}));
    is($third && $third->{payload}{state}, 'done', 'and "state":"done"');
    is($sdk->executed($id), 1, 'executed once');
};

subtest 'hundreds of actions in flight: each ack reaches its own panel' => sub {
    # more than the first table of sent actions holds: it grows twice
    $sdk->set(ack_delay => 1);
    my @panels = ($p, $q, $t->panel('/ws/panel', name => 'r'));
    my %ids;
    for my $i (0 .. $#panels) {
        $ids{$i} = [ map { uuid4() } 1 .. 300 ];
        $panels[$i]->send_json(action($_, 'dd-a')) for @{ $ids{$i} };
    }
    my @all = map { @{ $ids{$_} } } keys %ids;
    ok(wait_for(sub { !grep { !$sdk->executed($_) } @all }, 10),
        'the SDK got all 900 while none was acked yet');
    my $dup = ask($q, $ids{0}[150], 'dd-a');
    is($dup && $dup->{payload}{state}, 'pending',
        'one of them sent again: a pending duplicate');
    my $acked = 0;
    for my $i (0 .. $#panels) {
        my %want = map { $_ => 1 } @{ $ids{$i} };
        ok(wait_for(sub {
            my %got = map { $_->{json}{payload}{action_msg_id} => 1 }
                grep { ($_->{json}{type} // '') eq 'action_ack'
                    && !$_->{json}{payload}{duplicate} } $panels[$i]->messages;
            return !grep { !$got{$_} } keys %want;
        }, 10), "panel $i got the acks of its 300 actions");
        my @foreign = grep {
            my $j = $_->{json};
            ($j->{type} // '') eq 'action_ack' && !$j->{payload}{duplicate}
                && !$want{ $j->{payload}{action_msg_id} // '' }
                && grep { $_ eq ($j->{payload}{action_msg_id} // '') } @all
        } $panels[$i]->messages;
        is(scalar @foreign, 0, "panel $i got no ack of another panel's");
    }
    is(scalar(grep { $sdk->executed($_) == 1 } @all), 900,
        'each executed once');
    $sdk->set(ack_delay => 0);
    $_->clear for @panels;
};

subtest 'records of long and short actions, used again, keep their ids' => sub {
    # a record kept for use again has room for 256 bytes of strings: a
    # 256-byte msg_id with its action name does not fit and is its own
    $sdk->set(ack_delay => 0.5);
    for my $round (1, 2) {
        my @now = map {
            $_ % 2 ? $round . ('m' x 249) . sprintf('-%05d', $_) : uuid4()
        } 1 .. 40;
        is(length($now[0]), 256, 'every other msg_id is 256 bytes long');
        $p->send_json(action($_, 'dd-a', action => 'restart-long-name'))
            for @now;
        my %want = map { $_ => 1 } @now;
        ok(wait_for(sub {
            my %got = map { $_->{json}{payload}{action_msg_id} => 1 }
                grep { ($_->{json}{type} // '') eq 'action_ack'
                    && !$_->{json}{payload}{duplicate} } $p->messages;
            return !grep { !$got{$_} } keys %want;
        }, 10), "round $round: each of the 40 is acked under its own msg_id");
        is(scalar(grep { $sdk->executed($_) == 1 } @now), 40,
            "round $round: each executed once");
        $p->clear;
    }
    $sdk->set(ack_delay => 0);
};

subtest 'a different msg_id is executed again' => sub {
    my ($a, $b) = (uuid4(), uuid4());
    my $ra = ask($p, $a, 'dd-a');
    my $rb = ask($p, $b, 'dd-a');
    ok($ra && !is_dup($ra) && $ra->{payload}{success}, 'first executed');
    ok($rb && !is_dup($rb) && $rb->{payload}{success}, 'second executed');
    is($sdk->executed($a) + $sdk->executed($b), 2, 'the SDK ran both');
};

# one read with several actions: their claims run together at the end of
# the pass, in the order the actions came; a query in the same read sees
# the claims made before it
subtest 'actions in one read: claimed in order, seen by a query after them' => sub {
    my ($x, $y) = (uuid4(), uuid4());
    my ($s) = raw_ws_connect($t->port(0), '/ws/panel');
    ok($s, 'a raw panel is open');
    my $frames = join '', map { ws_frame(payload => encode_json($_)) }
        action($x, 'dd-a'), action($y, 'dd-a'), action($x, 'dd-a'),
        { msg_id => "q-$x", type => 'action_status',
            payload => { action_msg_id => $x } };
    is(raw_send($s, $frames), length $frames, 'four messages in one write');
    my (@acks, @dups, $st);
    while (my $f = raw_read_frame($s, 5)) {
        last if $f->{eof};
        my $j = try_decode_json($f->{payload}) // next;
        next if ($j->{type} // '') eq 'target_status';
        if (($j->{type} // '') eq 'action_status') { $st = $j; }
        elsif (is_dup($j)) { push @dups, $j; }
        elsif (($j->{type} // '') eq 'action_ack') { push @acks, $j; }
        last if $st && @dups && @acks == 2;
    }
    is(join(' ', sort map { $_->{payload}{action_msg_id} } @acks),
        join(' ', sort $x, $y), 'each of the two ran and was acked');
    is(scalar(@dups), 1, 'the repeat in the same read is a duplicate');
    is($dups[0] && $dups[0]{payload}{action_msg_id}, $x, 'of the first');
    is($dups[0] && $dups[0]{payload}{state}, 'pending', 'still pending then');
    is($st && $st->{payload}{state}, 'pending',
        'the query after them finds the first claimed (pending)');
    sleep_loop($QUIET);
    is($sdk->executed($x), 1, 'the SDK ran the first once');
    is($sdk->executed($y), 1, 'and the second once');
    close $s;
};

subtest 'a claim is released when the target is down, so a retry runs' => sub {
    my $id = uuid4();
    my $r = ask($p, $id, 'dd-down');
    is($r && $r->{type}, 'error', 'an error');
    is($r && $r->{payload}{code}, 'TARGET_UNAVAILABLE', 'TARGET_UNAVAILABLE');
    is($r && $r->{msg_id}, $id, "with the action's msg_id");

    my $again = ask($p, $id, 'dd-down');
    is($again && $again->{payload}{code}, 'TARGET_UNAVAILABLE',
        'a retry while still down is not a duplicate');

    $sdk_down = fake_sdk(port => $port_down, target_id => 'dd-down',
        heartbeat_interval => 0);
    ok($sdk_down->wait_connections(1, 5), 'the target came up');
    # the panel is told, and the upstream is usable right after
    ok($p->recv_type('target_status', target_id => 'dd-down', state => 'up',
        timeout => 5), 'the panel was told the target is up');

    my $ok = ask($p, $id, 'dd-down');
    is($ok && $ok->{type}, 'action_ack', 'the retry with the same msg_id');
    ok($ok && !is_dup($ok) && $ok->{payload}{success},
        'was executed, not taken as a duplicate');
    is($sdk_down->executed($id), 1, 'the SDK ran it once');
    ok(is_dup(ask($p, $id, 'dd-down')), 'now it is a duplicate');
};

subtest 'after TARGET_DISCONNECTED the retry is a duplicate' => sub {
    my $id = uuid4();
    # the SDK receives the action and drops the connection without an ack
    $sdk_drop->set(on_action => sub {
        my ($s) = @_;
        Mojo::IOLoop->next_tick(sub { $s->drop_all });
        return;
    }, no_ack => 1);
    my $r = ask($p, $id, 'dd-drop');
    is($r && $r->{type}, 'error', 'an error');
    is($r && $r->{payload}{code}, 'TARGET_DISCONNECTED',
        'TARGET_DISCONNECTED');
    is($sdk_drop->executed($id), 1, 'the SDK had received it');

    $sdk_drop->set(on_action => undef, no_ack => 0);
    ok($sdk_drop->wait_connections(1, 5), 'the agent reconnected');
    ok($p->recv_type('target_status', target_id => 'dd-drop', state => 'up',
        timeout => 5), 'and the target is up again');
    my $dup = ask($p, $id, 'dd-drop');
    ok(is_dup($dup), 'the retry is answered "duplicate ignored"')
        or diag(encode_json($dup // {}));
    is($dup && $dup->{payload}{state}, 'failed', '"state":"failed"');
    ok($dup && defined $dup->{payload}{success} && !$dup->{payload}{success},
        '"success":false');
    is($dup && $dup->{payload}{message},
        'duplicate ignored: the first attempt failed', 'the message says so');
    my $o = $dup ? $dup->{payload}{original} : undef;
    ok($o && !$o->{success}, 'original: success false');
    is($o && $o->{code}, 'TARGET_DISCONNECTED', 'original: the code');
    is($sdk_drop->executed($id), 1, 'the SDK ran it at most once');
};

is(status($t)->{duplicates} // -1, 8,
    'amonitor_status counts the duplicates');

$p->close;
$q->close;
$t->stop;
$sdk_down->stop if $sdk_down;


# --- expiry -----------------------------------------------------------------

my $t2 = Test::AMonitor->new(workers => 1);
my $sdk_port = $sdk->port;    # the same fake SDK for every nginx
$t2->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_target dd-a ws://127.0.0.1:$sdk_port/;
    amonitor_dedupe_ttl 2s;
    amonitor_ack_timeout 1s;
    amonitor_reconnect 50ms 200ms;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
);
$t2->run;
ok($sdk->wait_connections(1), 'the second nginx dialed dd-a');

subtest 'after amonitor_dedupe_ttl the same msg_id runs again' => sub {
    my $p = $t2->panel('/ws/panel');
    my $id = uuid4();
    my $t0 = now_ms();
    ok(!is_dup(ask($p, $id, 'dd-a')), 'first: executed');
    ok(is_dup(ask($p, $id, 'dd-a')), 'at once: duplicate');
    sleep_loop(1 - (now_ms() - $t0) / 1000) if now_ms() - $t0 < 1000;
    ok(is_dup(ask($p, $id, 'dd-a')), 'half a TTL later: still a duplicate');
    sleep_loop(2.3 - (now_ms() - $t0) / 1000);
    my $r = ask($p, $id, 'dd-a');
    ok($r && !is_dup($r) && $r->{payload}{success},
        'after the TTL: executed again');
    is($sdk->executed($id), 2, 'the SDK ran it twice');
    ok(is_dup(ask($p, $id, 'dd-a')), 'and it is remembered again');
    $p->close;
};
$t2->stop;


# --- a full zone: LRU eviction ----------------------------------------------

my $t3 = Test::AMonitor->new(workers => 1, log_level => 'info');
$t3->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 128k;
    amonitor_target dd-a ws://127.0.0.1:$sdk_port/;
    amonitor_ack_timeout 2s;
    amonitor_reconnect 50ms 200ms;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
EOC
);

my %parts = $t3->config_parts;
my ($st) = $t3->nginx_t(%parts,
    http_config => $parts{http_config} =~ s/128k/64k/r);
isnt($st, 0, 'a 64k zone is refused (the minimum is 32 pages)');
$t3->run;
ok($sdk->wait_connections(1), 'the third nginx dialed dd-a');

subtest 'a full zone evicts the least recently used msg_ids' => sub {
    my $p = $t3->panel('/ws/panel');
    my $N = 2000;
    my @ids = map { sprintf('lru-%05d-%s', $_, uuid4()) } 0 .. $N - 1;
    my (%got, $bad);

    # keep up to 100 actions in flight
    my $next = 0;
    my $t0 = now_ms();
    while (keys %got < $N) {
        while ($next < $N && $next - keys(%got) < 100) {
            $p->send_json(action($ids[ $next++ ], 'dd-a'));
        }
        my $m = $p->recv(5) or last;
        my $j = $m->{json} // next;
        next if ($j->{type} // '') eq 'target_status';
        my $id = ($j->{type} // '') eq 'action_ack'
            ? $j->{payload}{action_msg_id} : $j->{msg_id};
        $got{$id // '?'} = $j;
    }
    note(sprintf('%d actions in %.1f s', $N, (now_ms() - $t0) / 1000));
    is(scalar(keys %got), $N, "all $N actions were answered");
    my @errors = grep { ($_->{type} // '') ne 'action_ack'
        || !$_->{payload}{success} || is_dup($_) } values %got;
    is(scalar(@errors), 0, 'all by a successful ack of the SDK, no error')
        or diag(encode_json($errors[0]));

    my $s = status($t3);
    cmp_ok($s->{evictions} // 0, '>', 0, 'amonitor_status counts evictions');
    error_log_like(qr/\[warn\].*evicted/, 'a warn line says entries were '
        . 'evicted');
    my $lines = $t3->log_count(qr/\[warn\].*evicted/);
    cmp_ok($lines, '<=', 2, "$s->{evictions} evictions gave $lines warn "
        . 'line(s), not one per eviction (summed up once a minute)');

    my $oldest = ask($p, $ids[0], 'dd-a');
    ok($oldest && !is_dup($oldest) && $oldest->{payload}{success},
        'the oldest msg_id was forgotten: it is executed again');
    is($sdk->executed($ids[0]), 2, 'the SDK ran it a second time');
    for my $i ($N - 1, $N - 2, $N - 10) {
        ok(is_dup(ask($p, $ids[$i], 'dd-a')),
            "recent msg_id $i is still a duplicate");
        is($sdk->executed($ids[$i]), 1, "and ran once");
    }

    # the index after many nodes were taken over for new ids: each of the
    # last 100 is found, none ran twice
    my @lost = grep { !is_dup(ask($p, $ids[$_], 'dd-a')) }
        $N - 100 .. $N - 11;
    is(scalar(@lost), 0, 'the 90 msg_ids before them are duplicates too')
        or diag("not found: @lost");
    is(scalar(grep { $sdk->executed($ids[$_]) != 1 } $N - 100 .. $N - 1), 0,
        'and each ran once');
    no_error_log(qr/\[(?:alert|crit)\]/, 'no alert: eviction made room');
    $p->close;
};

done_testing();
