package Test::AMonitor::Log;

# Log checks of the harness: the error_log helpers (error_log_like,
# no_error_log, wait_error_log, mark_log, ...), which lines make a log
# dirty ([alert], [crit], [emerg], sanitizer and valgrind reports, signal
# exits), and the final check: before done_testing() writes the plan,
# every nginx instance of the file is stopped and one more test requires
# all their logs to be clean.  The methods are inherited by
# Test::AMonitor::Nginx; called as functions they use the current
# instance.

use strict;
use warnings;

use Carp qw(croak);
use Exporter 'import';
use Scalar::Util qw(blessed);
use Test::Builder;
use Test::More ();

use Test::AMonitor::Process qw(read_file);
use Test::AMonitor::Util qw(wait_for default_timeout);

our @EXPORT_OK = qw(error_log_like no_error_log wait_error_log
    scan_log_text);

# what makes an error log dirty
our @BAD_LOG = (
    qr/\[(?:alert|crit|emerg)\]/,
    qr/ERROR: AddressSanitizer/,
    qr/ERROR: LeakSanitizer/,
    qr/runtime error:/,
    qr/exited on signal/,
    qr/ERROR SUMMARY: [1-9]/,    # valgrind
);

my $MAIN_PID = $$;
my $FINAL_DONE = 0;


# the instance a log helper works on: the invocant when called as a
# method, else the current nginx instance
sub _self {
    my ($args) = @_;
    return shift @$args if blessed $args->[0]
        && $args->[0]->isa(__PACKAGE__);
    my $t = Test::AMonitor::Nginx->current
        or croak "no nginx instance: create one with Test::AMonitor->new";
    return $t;
}

# true once the final check ran (instances gone later need no record)
sub final_done { $FINAL_DONE }


# --- the error log of one instance ----------------------------------------

sub error_log_path { "$_[0]{prefix}/error.log" }

# remember the current end of error.log: the *_log helpers look only at
# what is written after the mark
sub mark_log {
    my ($self) = @_;
    $self->{log_mark} = -s $self->error_log_path // 0;
    return $self;
}

sub read_error_log {
    my ($self, %opt) = @_;
    return read_file($self->error_log_path,
        $opt{all} ? 0 : $self->{log_mark});
}

sub _re {
    my ($re) = @_;
    return ref $re eq 'Regexp' ? $re : qr/\Q$re\E/;
}

# number of log lines (after the mark) matching $re
sub log_count {
    my ($self, $re) = @_;
    $re = _re($re);
    return scalar grep { $_ =~ $re } split /\n/, $self->read_error_log;
}

# wait until the log (after the mark) matches; true on success
sub wait_error_log {
    my $self = _self(\@_);
    my ($re, $timeout) = @_;
    $re = _re($re);
    return wait_for(sub { $self->read_error_log =~ $re }, $timeout)
        ? 1 : 0;
}

# test: the log (after the mark) matches $re within $timeout seconds
sub error_log_like {
    my $self = _self(\@_);
    my ($re, $name, $timeout) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $re = _re($re);
    my $ok = wait_for(sub { $self->read_error_log =~ $re },
        $timeout // default_timeout());
    return Test::More::ok($ok, $name // "error log matches $re");
}

# test: no log line (after the mark) matches $re
sub no_error_log {
    my $self = _self(\@_);
    my ($re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $re = _re($re);
    my @hits = grep { $_ =~ $re } split /\n/, $self->read_error_log;
    my $ok = Test::More::ok(!@hits, $name // "no error log line matches $re");
    Test::More::diag("matching lines:\n" . join("\n", @hits[0 .. ($#hits > 9
        ? 9 : $#hits)])) if @hits;
    return $ok;
}

# lines matching $re are not held against the final check of this instance
sub ignore_log {
    my ($self, @re) = @_;
    push @{ $self->{ignore} }, map { _re($_) } @re;
    return $self;
}

# record a problem that fails the final check
sub problem {
    my ($self, $msg) = @_;
    push @{ $self->{problems} }, $msg;
    Test::More::note("nginx problem: $msg");
}

# return and forget the recorded problems (for tests of the harness)
sub take_problems {
    my ($self) = @_;
    my @p = @{ $self->{problems} };
    $self->{problems} = [];
    return @p;
}

# the offending lines of a log text: [alert]/[crit]/[emerg], sanitizer
# reports, signal exits, valgrind errors; minus lines matching @ignore
sub scan_log_text {
    my ($text, @ignore) = @_;
    my @bad;
    LINE: for my $line (split /\n/, $text // '') {
        next unless grep { $line =~ $_ } @BAD_LOG;
        for my $re (@ignore) {
            next LINE if $line =~ $re;
        }
        push @bad, $line;
    }
    return @bad;
}

# every log file of this instance: error.log, the launcher's stderr,
# valgrind logs
sub log_files {
    my ($self) = @_;
    my @f = ($self->error_log_path, "$self->{prefix}/stderr.log",
        glob("$self->{prefix}/valgrind.*.log"));
    return grep { -e } @f;
}

# problems and offending log lines of this instance
sub check_logs {
    my ($self) = @_;
    my @bad = @{ $self->{problems} };
    for my $f ($self->log_files) {
        push @bad, map { "$f: $_" }
            scan_log_text(read_file($f), @{ $self->{ignore} });
    }
    return @bad;
}


# --- the final check --------------------------------------------------------

sub _in_subtest {
    my $hub = eval { Test2::API::test2_stack()->top };
    return $hub && $hub->isa('Test2::Hub::Subtest') ? 1 : 0;
}

# stop everything, then one test over all logs of the file
sub _final_check {
    return if $FINAL_DONE || $$ != $MAIN_PID;
    $FINAL_DONE = 1;

    my @live = Test::AMonitor::Nginx->live_instances;
    $_->stop for grep { $_->{running} } @live;
    my @inst = Test::AMonitor::Nginx->all_instances;
    return unless grep { $_->{starts} } @inst;

    for my $sdk (Test::AMonitor::FakeSDK->registered) {
        eval { $sdk->stop };
    }

    my @bad;
    for my $t (grep { $_->{starts} } @inst) {
        push @bad, $t->check_logs;
    }

    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::ok(!@bad, 'nginx logs are clean: no alert/crit/emerg, '
        . 'sanitizer report, signal exit or forced stop');
    if (@bad) {
        my @show = @bad > 30 ? (@bad[0 .. 29], '...') : @bad;
        Test::More::diag(join "\n", @show);
    }
    _report_logs(@inst);
}

sub _report_logs {
    my (@inst) = @_;
    for my $t (@inst) {
        if ($ENV{TEST_AMON_CATLOG}) {
            for my $f ($t->log_files) {
                Test::More::diag("--- $f\n" . read_file($f));
            }
        }
        if ($t->{leave}) {
            Test::More::diag("nginx prefix kept: $t->{prefix}");
        }
    }
}

{
    # every done_testing() of the file runs the final check first
    no warnings 'redefine';
    my $orig = \&Test::Builder::done_testing;
    *Test::Builder::done_testing = sub {
        _final_check() unless _in_subtest();
        goto &$orig;
    };
}

$SIG{INT}  = sub { exit 130 };
$SIG{TERM} = sub { exit 143 };

END {
    if ($$ == $MAIN_PID) {
        my $status = $?;
        if (!$FINAL_DONE) {
            # the file died or had a numeric plan: still stop everything
            # and tell what the logs hold
            $FINAL_DONE = 1;
            for my $t (Test::AMonitor::Nginx->live_instances) {
                eval { $t->stop };
            }
            my @inst = Test::AMonitor::Nginx->all_instances;
            for my $t (grep { $_->{starts} } @inst) {
                my @bad = $t->check_logs;
                Test::More::diag("nginx log problems:\n" . join "\n", @bad)
                    if @bad;
            }
            _report_logs(@inst);
        }
        $? = $status;
    }
}


1;
