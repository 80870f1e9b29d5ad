# verifier-cle.ps1 : vérifie, sous Windows, qu'une copie de ce kit (clé USB, dossier
# réseau) est complète et intacte. Pour chaque fichier que nomment manifest-sha256.txt et
# tagmanifest-sha256.txt, il recalcule l'empreinte SHA-256 avec Get-FileHash et la compare.
# Il affiche OK, ou chaque fichier manquant ou abîmé ; il rend 0 (tout va bien), 1 (des
# fichiers manquent ou sont abîmés) ou 2 (ce dossier n'est pas un kit).
#
# Pour le lancer : clic droit sur ce fichier > « Exécuter avec PowerShell » ; ou, dans une
# fenêtre PowerShell (la lettre de la clé à la place de E:) :
#     powershell -ExecutionPolicy Bypass -File E:\verifier-cle.ps1
# Avec -SansPause, il n'attend pas Entrée avant de se terminer (pour un script).

param([switch]$SansPause)

$ErrorActionPreference = 'Stop'
$kit = if ($PSScriptRoot) { $PSScriptRoot } else { (Get-Location).Path }
# A manifest line: 64 hex digits, spaces, the path (RFC 8493 §2.1.3: CR, LF and % in it
# are written %0D, %0A and %25).
$ligne = '^([0-9A-Fa-f]{64})[ \t]+\*?(.+)$'

function Fin([int]$code) {
    if (-not $SansPause -and [Environment]::UserInteractive) {
        Read-Host 'Appuyez sur Entrée pour fermer' | Out-Null
    }
    exit $code
}

function Chemin([string]$brut) {
    return $brut -replace '%0[Dd]', "`r" -replace '%0[Aa]', "`n" -replace '%25', '%'
}

$problemes = New-Object System.Collections.Generic.List[string]
$verifies = 0
foreach ($nom in @('manifest-sha256.txt', 'tagmanifest-sha256.txt')) {
    $liste = Join-Path $kit $nom
    if (-not (Test-Path -LiteralPath $liste -PathType Leaf)) {
        Write-Host "$nom manque dans $kit : ce dossier n'est pas un kit complet." -ForegroundColor Red
        Fin 2
    }
    $lignes = [System.IO.File]::ReadAllLines($liste, [System.Text.Encoding]::UTF8)
    foreach ($texte in $lignes) {
        if ($texte.Trim() -eq '') { continue }
        if (-not ($texte -match $ligne)) {
            $problemes.Add("${nom} : ligne illisible : $texte")
            continue
        }
        $attendue = $Matches[1].ToLowerInvariant()
        $relatif = Chemin $Matches[2]
        $fichier = Join-Path $kit $relatif
        $verifies += 1
        if ($verifies % 25 -eq 1) {  # Write-Progress is slow on Windows PowerShell 5.1
            Write-Progress -Activity 'Vérification du kit' -Status $relatif
        }
        if (-not (Test-Path -LiteralPath $fichier -PathType Leaf)) {
            $problemes.Add("${relatif} : manquant")
            continue
        }
        try {
            $calculee = (Get-FileHash -LiteralPath $fichier -Algorithm SHA256).Hash.ToLowerInvariant()
        } catch {
            $problemes.Add("${relatif} : illisible ($($_.Exception.Message))")
            continue
        }
        if ($calculee -ne $attendue) {
            $problemes.Add("${relatif} : abîmé (son empreinte SHA-256 n'est plus la même)")
        }
    }
}
Write-Progress -Activity 'Vérification du kit' -Completed

if ($problemes.Count -eq 0) {
    Write-Host "OK : les $verifies fichiers du kit sont complets et intacts." -ForegroundColor Green
    Fin 0
}
$mot = if ($problemes.Count -gt 1) { 'problèmes' } else { 'problème' }
Write-Host "$($problemes.Count) $mot sur $verifies fichiers :" -ForegroundColor Red
foreach ($probleme in $problemes) { Write-Host "  $probleme" }
Write-Host 'Recopiez le kit depuis son original (ou relancez archiver sync).'
Fin 1
