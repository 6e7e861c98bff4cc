package Test::AMonitor::ActionEnds;

# Every way an action can end, played on one panel, to check that each
# gives back what it counted against its panel: the bytes of its frame
# (amonitor_connection_buffer_limit) and its place among the panel's
# actions in flight (amonitor_send_queue).  A test makes the SDK with
# ends_sdk(), configures the targets with ends_conf() and calls
# both_ends(): t/226 (one instance, the zone then Redis as the store)
# and t/337 (the panel on one cluster instance, the targets on another).

use strict;
use warnings;

use Exporter 'import';
use Mojo::IOLoop;
use Test::More;

use Test::AMonitor::FakeSDK;
use Test::AMonitor::Util qw(wait_for uuid4 now_ms tscale);

our @EXPORT_OK = qw(ends_sdk ends_conf every_end both_ends);

# the http-level directives of the plays: the limits they measure
# (1m of bytes, 16 in flight), short timeouts, and the targets: ok (the
# SDK), mute (a listener that never answers the upgrade), closed (a port
# nothing listens on), each given as [id, url]
sub ends_conf {
    my (%t) = @_;
    return join '', "    amonitor_ping 0;\n",
        "    amonitor_max_message_size 256k;\n",
        "    amonitor_connection_buffer_limit 1m;\n",
        "    amonitor_send_queue 16;\n",
        "    amonitor_connect_timeout 30s;\n",
        "    amonitor_ack_timeout 2s;\n",
        "    amonitor_reconnect 200ms 1s;\n",
        map { "    amonitor_target $t{$_}[0] $t{$_}[1];\n" }
            qw(ok mute closed);
}

# a fake SDK whose action "fail" is answered success=false, "silent"
# never, and "drop" never with its connection lost as well
sub ends_sdk {
    my (%opt) = @_;
    return Test::AMonitor::FakeSDK::fake_sdk(%opt, heartbeat_interval => 0,
        actions => { fail => [0, 'it broke'] },
        on_action => sub {
            my ($s, $env) = @_;
            my $name = $env->{payload}{action} // '';
            $s->set(no_ack => $name eq 'silent' || $name eq 'drop' ? 1 : 0);
            Mojo::IOLoop->next_tick(sub { $s->drop_all }) if $name eq 'drop';
            return;
        });
}

# the code of the last answer to $id: an error's code, 'ack' or 'nack'
# for an action_ack ('dup' for a duplicate), '' for none yet
sub _answer_of {
    my ($panel, $id) = @_;
    my @a = $panel->answers_to($id);
    return '' unless @a;
    my $a = $a[-1];
    return $a->{payload}{code} // 'error' if $a->{type} eq 'error';
    return 'dup' if $a->{payload}{duplicate};
    return $a->{payload}{success} ? 'ack' : 'nack';
}

sub _send {
    my ($e, %o) = @_;
    my $id = $o{msg_id} // uuid4();
    $e->{panel}->send_json({ msg_id => $id, type => 'action',
        target_id => $o{target}, timestamp => now_ms(),
        payload => { (defined $o{action} ? (action => $o{action}) : ()),
            pad => $e->{pad} } });
    return $id;
}

# sends one and waits for its answer (a repeated msg_id: a new one)
sub _end_of {
    my ($e, %o) = @_;
    my $p = $e->{panel};
    my $had = defined $o{msg_id} ? () = $p->answers_to($o{msg_id}) : 0;
    my $id = _send($e, %o);
    wait_for(sub { (() = $p->answers_to($id)) > $had }, tscale(10));
    return ($id, (() = $p->answers_to($id)) > $had
        ? _answer_of($p, $id) : '');
}

# sends $n at once for the target whose handshake never ends and waits
# until all are answered; returns how many ended TARGET_UNAVAILABLE
# (they waited) rather than RATE_LIMITED
sub _room {
    my ($e, $n) = @_;
    my $p = $e->{panel};
    my @ids = map { _send($e, target => $e->{mute}, action => 'restart') }
        1 .. $n;
    wait_for(sub { !grep { _answer_of($p, $_) eq '' } @ids }, tscale(15));
    my %n;
    $n{ _answer_of($p, $_) }++ for @ids;
    note("$e->{what}: " . join ', ', map { "$_: $n{$_}" } sort keys %n);
    is(($n{TARGET_UNAVAILABLE} // 0) + ($n{RATE_LIMITED} // 0), $n,
        "$e->{what}: the $n actions for the mute target end waiting or "
        . 'refused');
    return $n{TARGET_UNAVAILABLE} // 0;
}

# every_end(what => name, panel => a new open panel, sdk => ends_sdk(),
#     size => bytes of padding, n => actions sent at once, min, max =>
#     how many of them may wait, ok, mute, closed, nobody => target ids:
#     the SDK's, one whose handshake never ends, one whose dial is
#     refused, one nobody serves)
sub every_end {
    my (%o) = @_;
    my $e = { %o, pad => 'p' x $o{size} };
    my $w = $o{what};
    my ($ok_id, $code);

    my $room = _room($e, $o{n});
    ok($room >= $o{min} && $room <= $o{max},
        "$w: $room may wait at once ($o{min} to $o{max})");

    ($ok_id, $code) = _end_of($e, target => $o{ok}, action => 'restart');
    is($code, 'ack', "$w: an acked action");

    (undef, $code) = _end_of($e, target => $o{ok}, action => 'fail');
    is($code, 'nack', "$w: an action the SDK answers success=false");

    (undef, $code) = _end_of($e, target => $o{ok}, action => 'silent');
    is($code, 'ACK_TIMEOUT', "$w: an action the SDK never answers");

    (undef, $code) = _end_of($e, target => $o{ok}, action => 'drop');
    like($code, qr/^(?:TARGET_DISCONNECTED|TARGET_UNAVAILABLE|ACK_TIMEOUT)$/,
        "$w: an action whose SDK connection is lost ($code)");
    ok($o{sdk}->wait_connections(1, tscale(10)),
        "$w: the SDK is connected again");

    (undef, $code) = _end_of($e, target => $o{ok}, action => 'restart',
        msg_id => $ok_id);
    is($code, 'dup', "$w: a repeated msg_id");

    (undef, $code) = _end_of($e, target => $o{nobody}, action => 'restart');
    is($code, 'UNKNOWN_TARGET', "$w: an action for an unknown target");

    (undef, $code) = _end_of($e, target => $o{closed}, action => 'restart');
    is($code, 'TARGET_UNAVAILABLE',
        "$w: an action for a target that refuses");

    (undef, $code) = _end_of($e, target => $o{ok});
    is($code, 'INVALID_MESSAGE', "$w: an action without its name");

    # refused for the rate: the mute target's room overfilled once more
    my @over = map { _send($e, target => $o{mute}, action => 'restart') }
        1 .. $room + 2;
    wait_for(sub { !grep { _answer_of($e->{panel}, $_) eq '' } @over },
        tscale(15));
    is(scalar(grep { _answer_of($e->{panel}, $_) eq 'RATE_LIMITED' } @over),
        2, "$w: past the room, the actions are refused");

    (undef, $code) = _end_of($e, target => $o{ok}, action => 'restart');
    is($code, 'ack', "$w: an acked action after them");

    is(_room($e, $o{n}), $room, "$w: as many actions may wait as at the "
        . 'start: every end gave back what it counted');

    $o{panel}->close(1000);
    return $room;
}

# every_end twice, on a new panel each time: actions of 200 KB (the 1m
# of bytes holds 3 or 4 besides the one being reassembled) and small ones
# (amonitor_send_queue 16 in flight); panel => a sub that opens a
# panel, label => what the checks' names start with
sub both_ends {
    my (%o) = @_;
    my $panel = delete $o{panel};
    my $l = defined $o{label} ? delete($o{label}) . ', ' : '';
    every_end(%o, what => "${l}200 KB actions", size => 200 * 1024, n => 8,
        min => 3, max => 4, panel => $panel->());
    every_end(%o, what => "${l}small actions", size => 100, n => 20,
        min => 16, max => 16, panel => $panel->());
}

1;
