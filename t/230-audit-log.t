# amonitor_audit_log: one line per action outcome (time, panel address,
# token, target, action, msg_id, outcome, code, round trip), buffered per
# worker and flushed within a second, in text and in JSON, reopened on
# "nginx -s reopen" (USR1) as logrotate does it.  2 workers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 2);
my $sa = fake_sdk(port => $t->port(1), target_id => 'au-a',
    heartbeat_interval => 0, ack_delay => 0.03,
    actions => { restart => [1, 'restarted'], fail => [0, 'broken'] });

sub conf {
    my ($format) = @_;
    return (server => 0, http_config => <<"EOC");
    amonitor_zone amon 1m;
    amonitor_target au-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_reconnect 50ms 200ms;
    amonitor_audit_log %%PREFIX%%/audit.log $format;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
    }
EOC
}

my ($st, $out) = $t->nginx_t(conf('yaml'));
isnt($st, 0, 'an unknown format is refused');
like($out // '', qr/invalid audit log format "yaml", it must be "text" or "json"/,
    'with the exact message');

$t->write_config(conf('text'))->run;
ok($sa->wait_connections(2), 'both workers dialed au-a');
my $audit = $t->prefix . '/audit.log';

sub act {
    my ($p, $id, $target, $action) = @_;
    $p->send_json({ msg_id => $id, type => 'action', target_id => $target,
        payload => { action => $action } });
    return $p->recv_until(sub {
        my $j = $_[0]{json} // return 0;
        (($j->{payload}{action_msg_id} // $j->{msg_id} // '') eq $id)
            && ($j->{payload}{final} // 0);
    }, 5);
}

sub lines {
    open(my $fh, '<', $_[0]) or return ();
    my @l = <$fh>;
    chomp @l;
    return @l;
}

sub parse_text {
    my ($l) = @_;
    my ($time, $rest) = $l =~ /^(\S+) (.*)$/ or return undef;
    my %f = (time => $time);
    while ($rest =~ /\G\s*(\w+)=("(?:[^"\\]|\\.)*"|\S+)/gc) {
        my ($k, $v) = ($1, $2);
        $v =~ s/^"(.*)"$/$1/s and $v =~ s/\\(.)/$1/g;
        $f{$k} = $v;
    }
    return \%f;
}

my ($by_worker) = panels_per_worker($t, $sa, workers => 2);
my @two = map { $by_worker->{$_}[0] } sort keys %$by_worker;
is(scalar(@two), 2, 'a panel on each worker');

my $ok = "au-ok-" . uuid4();
my $bad = "au-bad-" . uuid4();
my $quote = "au \"q\" " . uuid4();
ok(act($two[0], $ok, 'au-a', 'restart'), 'an action acked');
ok(act($two[1], $bad, 'au-a', 'fail'), 'a failing action acked');
ok(act($two[1], $ok, 'au-a', 'restart'), 'the first again, other worker');
ok(act($two[0], $quote, 'nope', 'restart'), 'an unknown target');

ok(wait_for(sub { lines($audit) >= 4 }, 5),
    'four lines within the flush interval');
my %by;
for my $l (lines($audit)) {
    my $f = parse_text($l);
    push @{ $by{ $f->{msg_id} // '?' } }, $f if $f;
}
my ($a1, $a2) = @{ $by{$ok} // [] };
is($a1 && $a1->{outcome}, 'ack_success', 'ack success line');
like($a1 && $a1->{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    'UTC time with ms');
is($a1 && $a1->{panel}, '127.0.0.1', 'the panel address');
is($a1 && $a1->{token}, '-', 'no token');
is($a1 && $a1->{target}, 'au-a', 'the target');
is($a1 && $a1->{action}, 'restart', 'the action name');
ok($a1 && $a1->{rtt_ms} =~ /^\d+$/ && $a1->{rtt_ms} >= 25,
    'round trip in ms, at least the SDK\'s 30 ms delay ('
    . ($a1 ? $a1->{rtt_ms} : '') . ')');
is($a2 && $a2->{outcome}, 'duplicate', 'the repeat is a duplicate line');
is($a2 && $a2->{code}, 'done', 'with the state of the first');
is($a2 && $a2->{rtt_ms}, '-', 'and no round trip');
my ($b1) = @{ $by{$bad} // [] };
is($b1 && $b1->{outcome}, 'ack_failure', 'ack failure line');
my ($q1) = @{ $by{$quote} // [] };
is($q1 && $q1->{outcome}, 'error', 'an error line, msg_id quotes escaped');
is($q1 && $q1->{code}, 'UNKNOWN_TARGET', 'with its code');

# logrotate: move the file, USR1; new lines go to a new file
rename($audit, "$audit.1") or die $!;
$t->mark_log;
kill 'USR1', $t->master_pid;
# the master and each worker: a line buffered before a worker's reopen is
# flushed to the rotated file
ok(wait_for(sub { $t->log_count(qr/: reopening logs$/) > $t->workers }, 5),
    'the master and the workers reopened their files');
my $after = "au-after-" . uuid4();
ok(act($two[1], $after, 'au-a', 'restart'), 'an action after the reopen');
ok(wait_for(sub { grep { /\Q$after\E/ } lines($audit) }, 5),
    'its line is in the reopened file');
is(scalar(grep { /\Q$after\E/ } lines("$audit.1")), 0,
    'and not in the rotated one');

# JSON format
$t->write_config(conf('json'));
ok($t->reload, 'reload with the json format');
($by_worker) = panels_per_worker($t, $sa, workers => 2);
my $p = (values %$by_worker)[0][0];
my $js = "au-json-" . uuid4();
ok(act($p, $js, 'au-a', 'restart'), 'an action');
my $line;
ok(wait_for(sub { ($line) = grep { /\Q$js\E/ } lines($audit); $line }, 5),
    'a JSON line');
my $j = eval { decode_json($line) } // {};
is($j->{outcome}, 'ack_success', 'outcome');
is($j->{target}, 'au-a', 'target');
is($j->{action}, 'restart', 'action');
is($j->{msg_id}, $js, 'msg_id');
ok(defined $j->{ts} && $j->{ts} > 1.7e12, 'ms timestamp');
ok(!defined $j->{token} && exists $j->{token}, 'token null');
ok(($j->{rtt_ms} // 0) >= 25, 'rtt_ms');

# access_log on the audit log's file, without and with a buffer, before
# and after it: access lines and audit lines both reach the file (access
# lines went into the audit log's buffer and were lost; with "buffer="
# after it nginx -t refused the configuration)
for my $c (['access_log first', 'access_log %%PREFIX%%/shared.log;', ''],
    ['access_log after, buffered', '',
        'access_log %%PREFIX%%/shared.log combined buffer=4k flush=1s;'])
{
    my ($what, $before, $after) = @$c;
    my $shared = $t->prefix . '/shared.log';
    unlink $shared;
    $t->write_config(server => 0, http_config => <<"EOC");
    amonitor_zone amon 1m;
    amonitor_target au-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_reconnect 50ms 200ms;
    $before
    amonitor_audit_log %%PREFIX%%/shared.log;
    $after
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /hello { return 204; }
    }
EOC
    ok($t->reload, "$what: the configuration loads");
    ($by_worker) = panels_per_worker($t, $sa, workers => 2);
    my $q = (values %$by_worker)[0][0];
    my $sid = "au-shared-" . uuid4();
    ok(act($q, $sid, 'au-a', 'restart'), "$what: an action");
    $t->http_get('/hello') for 1 .. 3;
    ok(wait_for(sub { grep { /\Q$sid\E/ } lines($shared) }, 5),
        "$what: its audit line is in the file");
    ok(wait_for(sub { (grep { m{"GET /hello } } lines($shared)) >= 3 }, 5),
        "$what: the access lines are in the file too");
}

$t->stop;
done_testing;
