package Test::AMonitor::Interop;

# Checks shared by the interop suites (t/120 Python websockets, t/130
# Node ws): the same panel-side behaviour (actions, fragments, routing,
# choosing targets), driven through another implementation's client,
# against SDK servers of that implementation.

use strict;
use warnings;

use Exporter 'import';
use FindBin;
use POSIX qw(WNOHANG);
use Test::More;
use Test::AMonitor::Util qw(uuid4 try_decode_json wait_for tscale);

our @EXPORT_OK = qw(events panel_checks start_sdk stop_sdk run_panel
    with_final python_websockets reload_rounds);

my @KIDS;


# the version of Python's websockets under interpreter $py; without it a
# failure (not a skip), and the test ends
sub python_websockets {
    my ($py) = @_;
    my $v = `$py -c 'import websockets; print(websockets.__version__)' 2>&1`;
    if ($? != 0) {
        fail("$py with the websockets module is needed (apt-get install "
            . "python3-websockets, or bash scripts/deps.sh): $v");
        done_testing();
        exit;
    }
    chomp $v;
    return $v;
}


# start an SDK script: run => [interpreter, script], log => path,
# port, args => { option => value }; returns { pid, log, port }
sub start_sdk {
    my (%o) = @_;
    my @cmd = (@{ $o{run} }, '--port', $o{port}, '--log', $o{log},
        map { ("--$_", $o{args}{$_}) } sort keys %{ $o{args} // {} });
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    my $ready = <$fh>;
    die "$o{run}[-1] did not start: " . ($ready // 'no output') . "\n"
        unless ($ready // '') =~ /READY/;
    my $sdk = { pid => $pid, fh => $fh, log => $o{log}, port => $o{port} };
    push @KIDS, $sdk;
    return $sdk;
}

sub stop_sdk {
    my ($sdk) = @_;
    return unless $sdk->{pid};
    kill 'TERM', $sdk->{pid};
    wait_for(sub { waitpid($sdk->{pid}, WNOHANG) != 0 }, 5)
        or kill('KILL', $sdk->{pid});
    close $sdk->{fh};
    $sdk->{pid} = undef;
}

END { stop_sdk($_) for grep { $_->{pid} } @KIDS }


# run a panel script (run => [interpreter, script]) with URL STEPS...;
# returns its JSON lines
sub run_panel {
    my ($run, $url, @args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        exec(@$run, $url, @args) or POSIX::_exit(127);
    }
    my @out;
    while (my $l = <$fh>) {
        my $j = try_decode_json($l);
        if ($j) {
            push @out, $j;
        }
        else {
            diag("$run->[-1]: $l");
        }
    }
    close $fh;
    return @out;
}


# three reloads of nginx $t (one worker) seen by t/interop/reload_panel.py
# under $py at $url (its SDK on port sdk_port => P, more arguments in
# args => [..]): each must end the panel with 1012 after the events in
# flight (all of them with events => N, else at least one), the old
# worker must exit and a new one run
sub reload_rounds {
    my ($t, $py, $url, %o) = @_;
    my $script = "$FindBin::Bin/interop/reload_panel.py";

    for my $n (1 .. ($o{rounds} // 3)) {
        my $round = ($o{label} // '') . $n;
        my @old = $t->worker_pids;

        my ($r) = run_panel([$py, $script], $url, '--sdk-port', $o{sdk_port},
            '--master-pid', $t->master_pid, @{ $o{args} // [] });

        ok($r && $r->{ev} eq 'closed', "round $round: the panel's"
            . ' connection ended') or diag(explain($r));
        is($r->{code}, 1012, "round $round: with 1012, after "
            . ($r->{events} // 0) . ' events (1006: without a close frame)');
        if ($o{events}) {
            is($r->{events} // 0, $o{events}, "round $round: every event"
                . ' in flight was read');
        }
        else {
            cmp_ok($r->{events} // 0, '>', 0, "round $round: the events in"
                . ' flight were read');
        }

        ok(wait_for(sub { !grep { kill 0, $_ } @old }, tscale(8)),
            "round $round: the old worker exits");
        ok(wait_for(sub { my @w = $t->worker_pids; @w == 1 }, tscale(5)),
            "round $round: a new worker runs");
    }
}


# what the agent makes of an SDK's action_ack (JSON text): the same bytes
# with "final":true inserted as the first member of the payload object
sub with_final {
    my ($text) = @_;
    return undef unless defined $text;
    my $out = $text;
    $out =~ s/("payload"\s*:\s*\{)(\s*\})?/$1 . '"final":true'
        . (defined $2 ? $2 : ',')/e or return undef;
    return $out;
}


# the JSON lines an interop SDK script logged, optionally of one kind
sub events {
    my ($sdk, $ev) = @_;
    open(my $fh, '<:raw', $sdk->{log}) or return ();
    my @e = grep { defined } map { try_decode_json($_) } <$fh>;
    close $fh;
    return $ev ? grep { $_->{ev} eq $ev } @e : @e;
}


# panel => sub (url, args...) running the client, url, tok => [..],
# tag (msg_id and target prefix), word (in the SDK's ack message),
# sdk, frag (the SDK that fragments), frag_port
sub panel_checks {
    my (%o) = @_;
    my $tag = $o{tag};

    subtest 'a heartbeat sent in four fragments arrives whole and unchanged'
        => sub {
        my @r = $o{panel}->($o{url}, @{ $o{tok} }, '--target', "$tag-frag", 'wait-type:heartbeat',
            'wait-type:heartbeat', 'wait-type:heartbeat');
        my %frag_sent = map { $_->{text} => 1 }
            grep { $_->{fragments} == 4 } events($o{frag}, 'sent');
        ok(scalar(keys %frag_sent), 'the SDK sent fragmented heartbeats');
        my @mine = grep { $_->{text} && $frag_sent{ $_->{text} } } @r[1 .. 3];
        ok(@mine >= 1, 'a fragmented heartbeat reached the panel as one '
            . 'message with the same text (' . scalar(@mine) . ' of 3)');
    };

    subtest 'action and ack round trip, duplicate, fragmented action and ack'
        => sub {
        my $id1 = "$tag-" . uuid4();
        my $id2 = "$tag-" . uuid4();
        my $id3 = "$tag-" . uuid4();
        my @r = $o{panel}->($o{url}, @{ $o{tok} }, "action:$id1:restart",
            "action:$id1:restart", "action:$id2:restart:5", "action:$id3:dance");
        my ($a1, $dup, $a2, $a3) = @r[1 .. 4];

        my $j = try_decode_json($a1->{text} // '');
        ok($a1->{ok}, 'the action is answered');
        is($j && $j->{type}, 'action_ack', 'by an action_ack');
        is($j && $j->{payload}{action_msg_id}, $id1, 'matching action_msg_id');
        is($j && $j->{payload}{message}, "restarted by $o{word}", 'from the SDK');
        is($j && $j->{trace_id}, "trace-$id1", 'trace_id carried through');
        ok($j && $j->{payload}{final}, '"final":true');
        my %sent = map { (with_final($_->{text}) // '') => 1 }
            grep { ($_->{text} // '') =~ /action_ack/ } events($o{sdk}, 'sent');
        ok($a1->{text} && $sent{ $a1->{text} }, 'the ack bytes are the SDK\'s '
            . 'with "final":true first in the payload');

        my @recv = grep { ($_->{text} // '') =~ /\Q$id1\E/ }
            events($o{sdk}, 'recv');
        is(scalar @recv, 1, 'the SDK received the action once');
        is($recv[0]{text}, $a1->{sent}, 'with the bytes the panel sent');

        $j = try_decode_json($dup->{text} // '');
        is($j && $j->{type}, 'action_ack', 'the duplicate is answered with an '
            . 'action_ack');
        is($j && $j->{payload}{message}, 'duplicate ignored',
            '"duplicate ignored"');
        is($j && $j->{payload}{action_msg_id}, $id1, 'for the same msg_id');
        is($j && $j->{payload}{state}, 'done', '"state":"done"');
        ok($j && $j->{payload}{duplicate} && $j->{payload}{final},
            '"duplicate":true, "final":true');
        is($j && $j->{payload}{original}{message}, "restarted by $o{word}",
            'with the original result');

        $j = try_decode_json($a2->{text} // '');
        is($j && $j->{payload}{action_msg_id}, $id2,
            'an action sent in five fragments is acked');
        is((grep { ($_->{text} // '') eq $a2->{sent} } events($o{sdk}, 'recv')),
            1, 'and reached the SDK whole and unchanged');

        $j = try_decode_json($a3->{text} // '');
        ok($j && defined $j->{payload}{success} && !$j->{payload}{success},
            'an unsupported action is acked with success false');
        is($j && $j->{payload}{message}, 'unsupported action: dance',
            'and the SDK\'s message');
    };

    subtest 'a fragmented ack from the SDK reaches the panel whole' => sub {
        my $id = "$tag-frag-" . uuid4();
        my @r = $o{panel}->($o{url}, @{ $o{tok} }, '--target', "$tag-frag",
            "action:$id:restart");
        my $j = try_decode_json($r[1]{text} // '');
        is($j && $j->{payload}{action_msg_id}, $id, 'acked');
        my %sent = map { (with_final($_->{text}) // '') => 1 }
            grep { $_->{fragments} == 3 } events($o{frag}, 'sent');
        ok($r[1]{text} && $sent{ $r[1]{text} },
            'the ack the SDK sent in three fragments, as one message, '
            . 'unchanged but for "final":true first in the payload');
    };

    subtest 'a panel chooses its targets: in its URL, then with subscribe'
        => sub {
        my ($one, $two) = ("$tag-frag", "$tag-sdk");
        my @r = $o{panel}->("$o{url}?targets=$one", @{ $o{tok} },
            'heartbeats:4', "subscribe:s1-$tag:$two", 'heartbeats:4',
            "subscribe:s2-$tag:$tag-*", 'heartbeats:12', "subscribe:s3-$tag:");
        ok($r[0]{ok}, 'connected with ?targets=');
        is_deeply($r[1]{targets}, [($one) x 4],
            'only the heartbeats of the target the URL names');
        my $j = try_decode_json($r[2]{text} // '');
        is($j && $j->{type}, 'subscribed', 'subscribe is answered with '
            . 'subscribed');
        is_deeply($j && $j->{payload}{targets}, [$two], 'naming the new set');
        is_deeply($r[3]{targets}, [($two) x 4],
            'from then on only the new target\'s heartbeats');
        $j = try_decode_json($r[4]{text} // '');
        is_deeply($j && $j->{payload}{targets}, ["$tag-*"], 'a pattern');
        my %seen;
        $seen{ $_ // '' }++ for @{ $r[5]{targets} || [] };
        ok($seen{$one} && $seen{$two}, 'matches both targets')
            or diag(explain $r[5]);
        is(scalar(keys %seen), 2, 'and nothing else');
        $j = try_decode_json($r[6]{text} // '');
        is_deeply($j && $j->{payload}{targets}, [], 'an empty set is '
            . 'answered as one');
    };

    subtest 'routing by target_url as existing tools send it' => sub {
        my $id = "$tag-url-" . uuid4();
        my @r = $o{panel}->($o{url}, @{ $o{tok} }, '--target', 'demo-target', '--target-url',
            'ws://127.0.0.1:' . $o{frag_port}, "action:$id:restart");
        my $j = try_decode_json($r[1]{text} // '');
        is($j && $j->{type}, 'action_ack', 'an unknown target_id with a known '
            . 'URL reaches the SDK of that URL');
        ok((grep { ($_->{text} // '') =~ /\Q$id\E/ } events($o{frag}, 'recv')),
            'the SDK at that URL got it');
    };
}

1;
