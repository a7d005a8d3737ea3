# Dot-sourced by installers\install-*-scripts.ps1: copy with a manifest of checksums
# (.studio-bridge-installed), so a second run changes nothing, an edited copy is kept unless
# -Force, and -Uninstall removes only what was installed. Uses the caller's $ManifestName, $Utf8 and $Force.

function Get-Sum([string]$Path) { (Get-FileHash -Algorithm SHA256 -LiteralPath $Path).Hash }

function Read-Manifest([string]$Dir) {
    $entries = [ordered]@{}
    $file = Join-Path $Dir $ManifestName
    if (Test-Path -LiteralPath $file) {
        foreach ($line in [System.IO.File]::ReadAllLines($file, $Utf8)) {
            $parts = $line -split ' ', 2
            if ($parts.Count -eq 2) { $entries[$parts[1]] = $parts[0] }
        }
    }
    return $entries
}

function Write-Manifest([string]$Dir, $Entries) {
    $file = Join-Path $Dir $ManifestName
    $lines = @($Entries.Keys | ForEach-Object { "$($Entries[$_]) $_" })
    $text = ($lines -join "`n") + "`n"
    if ((Test-Path -LiteralPath $file) -and ([System.IO.File]::ReadAllText($file, $Utf8) -eq $text)) { return }
    New-Item -ItemType Directory -Force -Path $Dir | Out-Null
    [System.IO.File]::WriteAllText($file, $text, $Utf8)
}

# Copy each of $Files from $Stage into $DestDir, keeping copies the user changed.
function Install-Into([string]$DestDir, [string]$Stage, [string[]]$Files) {
    $old = Read-Manifest $DestDir
    $new = [ordered]@{}
    $changed = $false
    foreach ($rel in $Files) {
        $src = Join-Path $Stage $rel
        $dst = Join-Path $DestDir $rel
        $sum = Get-Sum $src
        if (Test-Path -LiteralPath $dst) {
            $cur = Get-Sum $dst
            if ($cur -eq $sum) { $new[$rel] = $sum; continue }
            if (($cur -ne $old[$rel]) -and -not $Force) {
                Write-Host "kept your changed $dst (-Force replaces it)"
                if ($old.Contains($rel)) { $new[$rel] = $old[$rel] }
                continue
            }
            Write-Host "updated $dst"
        } else {
            Write-Host "installed $dst"
        }
        New-Item -ItemType Directory -Force -Path (Split-Path -Parent $dst) | Out-Null
        Copy-Item -LiteralPath $src -Destination $dst -Force
        $new[$rel] = $sum
        $changed = $true
    }
    # Files an earlier version installed that the checkout no longer has.
    foreach ($rel in @($old.Keys)) {
        if ($Files -contains $rel) { continue }
        $dst = Join-Path $DestDir $rel
        if (-not (Test-Path -LiteralPath $dst)) { continue }
        if (((Get-Sum $dst) -ne $old[$rel]) -and -not $Force) {
            Write-Host "kept your changed $dst (no longer shipped; -Force removes it)"
            $new[$rel] = $old[$rel]
        } else {
            Remove-Item -LiteralPath $dst -Force
            Write-Host "removed $dst (no longer shipped)"
            $changed = $true
        }
    }
    Write-Manifest $DestDir $new
    if (-not $changed) { Write-Host "up to date: $DestDir" }
}

# Remove what Install-Into put in $DestDir (changed copies stay unless -Force).
function Uninstall-From([string]$DestDir) {
    $file = Join-Path $DestDir $ManifestName
    if (-not (Test-Path -LiteralPath $file)) {
        Write-Host "nothing of Studio Bridge's in $DestDir"
        return
    }
    $old = Read-Manifest $DestDir
    foreach ($rel in @($old.Keys)) {
        $dst = Join-Path $DestDir $rel
        if (-not (Test-Path -LiteralPath $dst)) { continue }
        if (((Get-Sum $dst) -eq $old[$rel]) -or $Force) {
            Remove-Item -LiteralPath $dst -Force
            Write-Host "removed $dst"
        } else {
            Write-Host "kept your changed $dst (-Force removes it)"
        }
    }
    Remove-Item -LiteralPath $file -Force
}
